"""False positives of the built-in input guardrails on benign text: how many texts each check
would block, and what it matched in each.

Two measurements on each corpus, every text as one user message:

- the detectors directly (``find_pii``, ``find_secrets``), with the kind and the span found;
- the input guard of the README's example, run by ``Guard.screen_input``: ``pii`` block,
  ``secrets`` block, ``regex`` ``(?i)\\bproject nightjar\\b`` block, ``max_length`` 4000; each
  check alone (the rate per check) and all four together (the rate a user sees).

The corpora:

- spikee 0.9.2's benign seed set ``seeds-investment-advice-fp`` (111 questions about money,
  written to be refused by nothing); its ``seeds-wildguardmix-harmful-fp`` is empty as
  shipped (its script downloads the prompts from Hugging Face with a token) and is reported
  as such; and the benign documents of its ``base_user_inputs.jsonl`` files (the e-mails and
  pages its attacks are planted in), their placeholder taken out;
- with ``--retrieval DIR`` (``../shared/data/retrieval/msmarco``): MS MARCO's 50 queries and
  5,000 passages (web text: a phone number or an e-mail address there is often a real one,
  so each hit listed needs reading before it is called a false positive).

spikee is read from its wheel, not imported (it is not a dependency of headend)::

    pip download spikee==0.9.2 --no-deps -d /tmp/gpkgs
    .venv/bin/python bench/guardrails_false_positives.py \\
        --spikee /tmp/gpkgs/spikee-0.9.2-py3-none-any.whl \\
        [--retrieval ../shared/data/retrieval/msmarco]

``--spikee`` also takes an unpacked or installed copy (the directory holding ``spikee/``).
Raw output: bench/results/guardrails-fp.txt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from measured import source_state

from headend.guardrails.checks import Blocked, Finding
from headend.guardrails.detectors import Hit, find_pii, find_secrets
from headend.guardrails.guard import Guard
from headend.guardrails.rules import GUARDRAILS

ROOT = Path(__file__).resolve().parent.parent


DATASETS = "spikee/data/workspace/datasets"
FP_SEEDS = ("seeds-investment-advice-fp", "seeds-wildguardmix-harmful-fp")
NIGHTJAR = r"(?i)\bproject nightjar\b"
CHECKS = {
    "pii": {"check": "pii", "action": "block"},
    "secrets": {"check": "secrets", "action": "block"},
    "regex": {"check": "regex", "patterns": [NIGHTJAR], "action": "block"},
    "max_length": {"check": "max_length", "max_chars": 4000, "action": "block"},
}
OUT = ROOT / "bench" / "results" / "guardrails-fp.txt"
LOG: list[str] = []


def say(text: str = "") -> None:
    print(text, flush=True)
    LOG.append(text)


class Spikee:
    """spikee's dataset files, from its wheel or from a directory that holds ``spikee/``."""

    def __init__(self, where: Path) -> None:
        self.where = where
        if where.is_file():
            with zipfile.ZipFile(where) as wheel:
                self.files = {
                    name[len(DATASETS) + 1 :]: wheel.read(name).decode()
                    for name in wheel.namelist()
                    if name.startswith(DATASETS + "/") and name.endswith(".jsonl")
                }
        else:
            base = where / DATASETS
            self.files = {
                str(path.relative_to(base)): path.read_text() for path in base.glob("*/*.jsonl")
            }

    def rows(self, name: str) -> list[dict[str, str]]:
        return [json.loads(line) for line in self.files.get(name, "").split("\n") if line.strip()]


@dataclass
class Corpus:
    name: str
    texts: list[tuple[str, str]]  # (id, text)
    note: str = ""


@dataclass
class Flag:
    check: str
    what: str  # the kind and the text that matched


@dataclass
class Result:
    corpus: Corpus
    flags: dict[str, list[Flag]] = field(default_factory=dict)  # id -> flags
    detector: dict[str, set[str]] = field(default_factory=dict)  # check -> ids
    guard: dict[str, set[str]] = field(default_factory=dict)  # check (or "all") -> ids


class Quiet:
    """A guard's watcher that keeps nothing."""

    def checked(self, check: str, action: str, outcome: str, seconds: float) -> None:
        pass

    async def blocked(self, finding: Finding) -> None:
        pass


def spikee_corpora(spikee: Spikee) -> list[Corpus]:
    corpora = []
    for seed in FP_SEEDS:
        rows = spikee.rows(f"{seed}/standalone_user_inputs.jsonl")
        note = "" if rows else "empty as shipped: its fetch_and_convert_dataset.py downloads it"
        corpora.append(Corpus(f"spikee {seed}", [(r["id"], r["text"]) for r in rows], note))
    documents: dict[str, tuple[str, str]] = {}
    for name in sorted(spikee.files):
        if not name.endswith("/base_user_inputs.jsonl"):
            continue
        for row in spikee.rows(name):
            text = row["document"].replace(row.get("placeholder") or "<PLACEHOLDER>", "").strip()
            if text:
                documents.setdefault(text, (f"{name.split('/')[0]}:{row['id']}", text))
    corpora.append(
        Corpus(
            "spikee base_user_inputs (benign documents, de-duplicated)",
            list(documents.values()),
        )
    )
    return corpora


def retrieval_corpora(directory: Path) -> list[Corpus]:
    def lines(name: str) -> list[dict[str, str]]:
        text = (directory / name).read_text(encoding="utf-8")
        return [json.loads(line) for line in text.split("\n") if line.strip()]

    queries = [(q["_id"], q["text"]) for q in lines("queries.jsonl")]
    passages = [
        (p["_id"], f"{p['title']}\n{p['text']}" if p.get("title") else p["text"])
        for p in lines("corpus.jsonl")
    ]
    return [Corpus("MS MARCO queries", queries), Corpus("MS MARCO passages", passages)]


def shown(text: str, hit: Hit) -> str:
    before = text[max(0, hit.start - 30) : hit.start].replace("\n", " ")
    after = text[hit.end : hit.end + 30].replace("\n", " ")
    found = text[hit.start : hit.end]
    return f"{hit.kind} {found!r} in …{before}[{found}]{after}…"


async def measure(corpus: Corpus) -> Result:
    alone = {
        name: Guard(GUARDRAILS.validate_python([spec]), Quiet()) for name, spec in CHECKS.items()
    }
    whole = Guard(GUARDRAILS.validate_python(list(CHECKS.values())), Quiet())
    result = Result(corpus, detector={"pii": set(), "secrets": set()})
    result.guard = {name: set() for name in [*CHECKS, "all"]}
    for key, text in corpus.texts:
        flags: list[Flag] = []
        for name, finder in (("pii", find_pii), ("secrets", find_secrets)):
            hits = finder(text)
            if hits:
                result.detector[name].add(key)
                flags += [Flag(name, shown(text, hit)) for hit in hits]
        for name, guard in [*alone.items(), ("all", whole)]:
            try:
                await guard.screen_input([{"role": "user", "content": text}])
            except Blocked as blocked:
                result.guard[name].add(key)
                if name == "all":
                    flags.append(Flag("guard", f"blocked by {blocked.finding.check}"))
                elif name == "regex":
                    found = re.search(NIGHTJAR, text)
                    flags.append(Flag(name, repr(found.group(0)) if found else "?"))
                elif name == "max_length":
                    flags.append(Flag(name, f"{len(text)} characters"))
        if flags:
            result.flags[key] = flags
    return result


def rate(ids: set[str], total: int) -> str:
    return f"{len(ids)} ({100 * len(ids) / total:.1f} %)" if total else "-"


def report(results: list[Result]) -> None:
    say(
        "| corpus | texts | pii (detector) | secrets (detector) | pii (guard) | secrets (guard) "
        "| regex | max_length | whole guard | ≤ 2 % |"
    )
    say("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        n = len(r.corpus.texts)
        if not n:
            say(f"| {r.corpus.name} | 0 | {r.corpus.note} | | | | | | | |")
            continue
        met = "yes" if len(r.guard["all"]) <= 0.02 * n else "no"
        say(
            f"| {r.corpus.name} | {n:,} | {rate(r.detector['pii'], n)} "
            f"| {rate(r.detector['secrets'], n)} | {rate(r.guard['pii'], n)} "
            f"| {rate(r.guard['secrets'], n)} | {rate(r.guard['regex'], n)} "
            f"| {rate(r.guard['max_length'], n)} | {rate(r.guard['all'], n)} | {met} |"
        )
    say()
    for r in results:
        kinds: dict[str, int] = {}
        for flags in r.flags.values():
            for flag in flags:
                if flag.check in ("pii", "secrets"):
                    kind = flag.what.split(" ", 1)[0]
                    kinds[kind] = kinds.get(kind, 0) + 1
        say(f"{r.corpus.name}: {len(r.flags)} text(s) flagged; hits by kind: {kinds or 'none'}")
        texts = dict(r.corpus.texts)
        for key, flags in r.flags.items():
            say(f"  {key}: {texts[key][:160]!r}")
            for flag in flags:
                say(f"      {flag.check}: {flag.what}")
        say()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--spikee",
        type=Path,
        default=Path("/tmp/gpkgs/spikee-0.9.2-py3-none-any.whl"),
        help="spikee's wheel, or a directory holding spikee/ (unpacked or site-packages)",
    )
    parser.add_argument("--retrieval", type=Path, help="e.g. ../shared/data/retrieval/msmarco")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if not args.spikee.exists():
        sys.exit(f"{args.spikee}: no spikee here; pip download spikee==0.9.2 --no-deps -d DIR")
    corpora = spikee_corpora(Spikee(args.spikee))
    say(source_state())
    if args.retrieval is not None:
        corpora += retrieval_corpora(args.retrieval)
    say(f"spikee: {args.spikee}; checks: {json.dumps(list(CHECKS.values()))}")
    say()
    results = [asyncio.run(measure(corpus)) for corpus in corpora]
    report(results)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text("\n".join(LOG) + "\n")
    print(f"raw output: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
