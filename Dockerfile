# claw-ledger: the CLI, producer SDK and verifying processor.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY ledger ./ledger
COPY consumers ./consumers
COPY producers ./producers
COPY storage ./storage
COPY migrations ./migrations
COPY claw_ledger ./claw_ledger
# non-editable install; the migrations' SQL files are package data
RUN pip install .

RUN useradd --system --create-home ledger
USER ledger
ENV CLAW_LEDGER_STATE_DIR=/home/ledger/.claw-ledger

ENTRYPOINT ["claw-ledger"]
CMD ["processor", "run"]
