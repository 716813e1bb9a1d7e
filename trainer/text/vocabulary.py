"""Where a builtin tokenizer comes from at training time: `text.tokenizer` (a JSON file), else the
caption word counts that the shard writer stored in the shards' manifest (`caption_words`).

Every rank builds the same tokenizer from the same manifest (sorted by count, then word), so no
rank has to send it to the others (launch/preflight.py builds it once first, so a missing
vocabulary fails before any rank starts); the resolved tokenizer then lives in G's constructor
arguments (the export's generator.json) and in G's `tokenizer_json` buffer (checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path

from trainer.data.sources import find_manifest
from trainer.text.tokenizer import TokenizerError, WordTokenizer


def tokenizer_for(cfg) -> dict:
    t = cfg.text
    if t.tokenizer:
        path = Path(t.tokenizer).expanduser()
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TokenizerError(f"config key 'text.tokenizer': cannot read '{path}' ({exc})") from None
        try:
            tok = WordTokenizer.from_json(data, source=str(path))
        except TokenizerError as exc:
            raise TokenizerError(f"config key 'text.tokenizer': {exc}") from None
        return WordTokenizer(tok.vocab, t.context).to_json()
    manifest = find_manifest(cfg.data.urls) or {}
    counts = manifest.get("caption_words")
    if not counts:
        raise TokenizerError(
            "config key 'text.tokenizer': is empty and the shards of data.urls have no local "
            "manifest with caption word counts (written by `hiresgan shards --captions ...`); "
            "point text.tokenizer at a tokenizer JSON (`python -m trainer.text.vocabulary "
            "SHARD_FOLDER OUT.json` builds one)"
        )
    return WordTokenizer.from_counts(counts, context=t.context, max_words=t.max_words).to_json()


def main(argv=None) -> int:
    """python -m trainer.text.vocabulary SHARD_FOLDER OUT.json [--context N] [--max-words N]:
    a tokenizer JSON from the captions (.txt members) of local shards."""
    import argparse
    import glob
    import tarfile

    from trainer.text.tokenizer import count_words

    p = argparse.ArgumentParser(prog="python -m trainer.text.vocabulary")
    p.add_argument("shards", help="folder of shard-*.tar files")
    p.add_argument("out", type=Path)
    p.add_argument("--context", type=int, default=16)
    p.add_argument("--max-words", type=int, default=1000)
    args = p.parse_args(argv)

    def captions():
        for path in sorted(glob.glob(str(Path(args.shards) / "*.tar"))):
            with tarfile.open(path) as tar:
                for member in tar:
                    if member.name.endswith(".txt"):
                        yield tar.extractfile(member).read().decode("utf-8")

    tok = WordTokenizer.from_counts(count_words(captions()), context=args.context, max_words=args.max_words)
    args.out.write_text(json.dumps(tok.to_json(), indent=2))
    print(f"wrote {args.out}: {len(tok.vocab)} words, context {tok.context}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
