"""Ship a steps benchmark as the measurements the horizon explorer's cost panel draws (amaml_lab/measured/).

    python tools/package_costs.py benchmarks/cpu-steps-compiled-10-10000.json "<the bench command that made it>"

The packaged file names its source and command; tests/studies/test_committed.py checks its rows are the source's.
"""

import json
import sys
from pathlib import Path

from amaml_lab.io import write_text_atomic

ROOT = Path(__file__).resolve().parents[1]
MACHINE = "this project's 2-core CPU machine, one thread, each row in a fresh process"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tools/package_costs.py BENCH_JSON COMMAND", file=sys.stderr)
        return 2
    source, command = Path(argv[0]), argv[1]
    rows = json.loads(source.read_text())
    out = {"command": command, "source": source.as_posix(), "machine": MACHINE, "rows": rows}
    target = ROOT / "amaml_lab" / "measured" / "cpu-steps.json"
    write_text_atomic(target, json.dumps(out, indent=1) + "\n")
    print(f"{target.relative_to(ROOT)}: {len(rows)} rows from {source}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
