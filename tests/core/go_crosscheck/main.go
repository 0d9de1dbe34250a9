// Command go_crosscheck verifies claw-ledger's golden checkpoint and proofs with
// golang.org/x/mod/sumdb/note and sumdb/tlog, an independent implementation of
// signed notes and RFC 6962 proofs. Usage: go run . <example.json> <checkpoint>
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type example struct {
	Origin      string `json:"origin"`
	VerifierKey string `json:"verifier_key"`
	Leaves      []struct {
		LeafDataHex string `json:"leaf_data_hex"`
		LeafHashB64 string `json:"leaf_hash_b64"`
	} `json:"leaves"`
	Checkpoints []struct {
		Size int64  `json:"size"`
		Root string `json:"root_hash_b64"`
		Note string `json:"note"`
	} `json:"checkpoints"`
	Inclusion struct {
		LogIndex int64    `json:"log_index"`
		TreeSize int64    `json:"tree_size"`
		Proof    []string `json:"proof_b64"`
	} `json:"inclusion"`
	Consistency struct {
		OldSize int64    `json:"old_size"`
		NewSize int64    `json:"new_size"`
		Proof   []string `json:"proof_b64"`
	} `json:"consistency"`
}

func must(err error, what string) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL %s: %v\n", what, err)
		os.Exit(1)
	}
}

func hash(b64 string) tlog.Hash {
	raw, err := base64.StdEncoding.DecodeString(b64)
	must(err, "base64 "+b64)
	var h tlog.Hash
	if len(raw) != len(h) {
		must(fmt.Errorf("length %d", len(raw)), "hash "+b64)
	}
	copy(h[:], raw)
	return h
}

// openCheckpoint verifies the note and returns its size and root.
func openCheckpoint(msg []byte, verifiers note.Verifiers, origin string) (int64, tlog.Hash) {
	n, err := note.Open(msg, verifiers)
	must(err, "note.Open")
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) < 3 || lines[0] != origin {
		must(fmt.Errorf("text %q", n.Text), "checkpoint body")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	must(err, "tree size")
	return size, hash(lines[2])
}

func main() {
	raw, err := os.ReadFile(os.Args[1])
	must(err, "read example")
	var ex example
	must(json.Unmarshal(raw, &ex), "parse example")
	checkpoint, err := os.ReadFile(os.Args[2])
	must(err, "read checkpoint")

	v, err := note.NewVerifier(ex.VerifierKey)
	must(err, "note.NewVerifier")
	verifiers := note.VerifierList(v)

	size, root := openCheckpoint(checkpoint, verifiers, ex.Origin)
	var roots = map[int64]tlog.Hash{}
	for _, cp := range ex.Checkpoints {
		s, r := openCheckpoint([]byte(cp.Note), verifiers, ex.Origin)
		if s != cp.Size || r != hash(cp.Root) {
			must(fmt.Errorf("size %d root %x", s, r), "checkpoint fields")
		}
		roots[s] = r
	}
	if roots[size] != root {
		must(fmt.Errorf("size %d", size), "golden checkpoint root")
	}

	// tlog.StoredHashes recomputes the tree from the leaves with its own algorithm.
	stored := []tlog.Hash{}
	for i, leaf := range ex.Leaves {
		data, err := hex.DecodeString(leaf.LeafDataHex)
		must(err, "leaf hex")
		if tlog.RecordHash(data) != hash(leaf.LeafHashB64) {
			must(fmt.Errorf("leaf %d", i), "tlog.RecordHash")
		}
		hashes, err := tlog.StoredHashes(int64(i), data, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
			out := make([]tlog.Hash, len(idx))
			for j, k := range idx {
				out[j] = stored[k]
			}
			return out, nil
		}))
		must(err, "tlog.StoredHashes")
		stored = append(stored, hashes...)
		if r, ok := roots[int64(i+1)]; ok {
			got, err := tlog.TreeHash(int64(i+1), tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				out := make([]tlog.Hash, len(idx))
				for j, k := range idx {
					out[j] = stored[k]
				}
				return out, nil
			}))
			must(err, "tlog.TreeHash")
			if got != r {
				must(fmt.Errorf("size %d: %x != %x", i+1, got, r), "tlog.TreeHash")
			}
		}
	}

	inc := ex.Inclusion
	recordProof := tlog.RecordProof{}
	for _, p := range inc.Proof {
		recordProof = append(recordProof, hash(p))
	}
	leaf := hash(ex.Leaves[inc.LogIndex].LeafHashB64)
	must(tlog.CheckRecord(recordProof, inc.TreeSize, roots[inc.TreeSize], inc.LogIndex, leaf), "tlog.CheckRecord")

	con := ex.Consistency
	treeProof := tlog.TreeProof{}
	for _, p := range con.Proof {
		treeProof = append(treeProof, hash(p))
	}
	must(tlog.CheckTree(treeProof, con.NewSize, roots[con.NewSize], con.OldSize, roots[con.OldSize]), "tlog.CheckTree")

	// a flipped bit must fail: the checker is not blind
	bad := bytes.Clone(checkpoint)
	bad[len(ex.Origin)+1] ^= 1
	if _, err := note.Open(bad, verifiers); err == nil {
		must(fmt.Errorf("accepted"), "tampered note")
	}
	fmt.Println("ok")
}
