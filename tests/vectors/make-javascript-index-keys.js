// Node 20: payload hashes as the clawsig verifier computes them, JSON.stringify of the parse.
const crypto = require('crypto');
const seed = Buffer.from('9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60', 'hex');
const key = crypto.createPrivateKey({key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), seed]), format: 'der', type: 'pkcs8'});
const did = 'did:key:z6MktwupdmLXVVqTzCw4i46r4uGyosGXRnR3XjN4Zq7oMMsw';
const sent = '{"b":1,"10":2,"a":3,"2":4,"nested":{"01":1,"4294967295":2,"4294967294":3,"1":4,"-1":5,"1.5":6}}';
const stringified = JSON.stringify(JSON.parse(sent));
const b64u = (buf) => buf.toString('base64url');
const hash = (text) => b64u(crypto.createHash('sha256').update(Buffer.from(text, 'utf8')).digest());
const envelopeText = (payloadText, payloadHash) => '{"envelope_version":"1","envelope_type":"index_keys_example","payload":' + payloadText +
  ',"payload_hash_b64u":"' + payloadHash + '","hash_algorithm":"SHA-256","signature_b64u":"' +
  b64u(crypto.sign(null, Buffer.from(payloadHash, 'utf8'), key)) + '","algorithm":"Ed25519","signer_did":"' + did + '","issued_at":"2026-12-02T00:00:00.000Z"}';
// RFC 8785 order (UTF-16 code units: JavaScript's default sort) as a text, then what
// JSON.parse and JSON.stringify make of it: how a JCS-first signer must hash it
const jcs = (v) => v === null || typeof v !== 'object' ? JSON.stringify(v)
  : Array.isArray(v) ? '[' + v.map(jcs).join(',') + ']'
  : '{' + Object.keys(v).sort().map((k) => JSON.stringify(k) + ':' + jcs(v[k])).join(',') + '}';
const signedHere = JSON.stringify(JSON.parse(jcs(JSON.parse(sent))));
const out = {
  payload_as_sent: sent,
  json_stringify_of_its_parse: stringified,
  payload_hash_b64u: hash(stringified),
  verifies: envelopeText(sent, hash(stringified)),
  refused_hash_of_document_order: envelopeText(sent, hash(sent)),
  jcs_first_then_stringify: signedHere,
  jcs_first_envelope: envelopeText(signedHere, hash(signedHere)),
};
process.stdout.write(JSON.stringify(out, null, 2) + '\n');
