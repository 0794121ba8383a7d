"""``python -m perf [NAME ...]``: the anchor by default, the named benchmarks, or ``all``."""

import importlib
import pkgutil
import sys

import perf

DEFAULT = "anchor"


def main(argv: list[str]) -> int:
    names = sorted(m.name for m in pkgutil.iter_modules(perf.__path__) if m.name.startswith("bench_"))
    if any(a in ("-h", "--help") for a in argv):
        print(f"usage: python -m perf [NAME ...]   (default: {DEFAULT}; 'all': every one)\n"
              f"benchmarks: {', '.join(n.removeprefix('bench_') for n in names)}")
        return 0
    if argv == ["all"]:
        wanted = names
    else:
        wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv or [DEFAULT]]
    unknown = [n for n in wanted if n not in names]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(u.removeprefix('bench_') for u in unknown)}; available: "
              f"{', '.join(n.removeprefix('bench_') for n in names)}, all", file=sys.stderr)
        return 2
    for name in wanted:
        print(f"== {name.removeprefix('bench_')}", flush=True)
        importlib.import_module(f"perf.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
