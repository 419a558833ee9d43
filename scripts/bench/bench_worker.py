"""The line protocol every CPU worker of `candle-bench` serves on stdin/stdout, written once.

  load <case>          -> "ok[ <extra>]" | "err <message>"   (2 warm-up runs after building)
  run <case> <iters>   -> "times <ms> <ms> ..."
  info                 -> "ok <engine> <version> threads <n> pid <pid>"
  quit

A worker supplies `build(case) -> (fn, extra)`, its `info()` line and, optionally, a
context manager every call runs inside (PyTorch's inference mode).
"""
import contextlib
import sys
import time


def serve(build, info, context=contextlib.nullcontext, stdin=sys.stdin, stdout=sys.stdout) -> None:
    """Answers commands until `quit` or end of input; an exception becomes an `err` line."""
    cases = {}
    for line in stdin:
        words = line.split()
        if not words:
            continue
        try:
            if words[0] == "quit":
                break
            if words[0] == "load":
                fn, extra = build(words[1])
                with context():
                    fn()
                    fn()
                cases[words[1]] = fn
                stdout.write(f"ok {extra}\n" if extra else "ok\n")
            elif words[0] == "run":
                fn, n = cases[words[1]], int(words[2])
                times = []
                with context():
                    for _ in range(n):
                        t0 = time.perf_counter()
                        fn()
                        times.append((time.perf_counter() - t0) * 1e3)
                stdout.write("times " + " ".join(f"{t:.4f}" for t in times) + "\n")
            elif words[0] == "info":
                stdout.write(f"ok {info()}\n")
            else:
                stdout.write(f"err unknown command {words[0]}\n")
        except Exception as e:  # reported to the coordinator, which decides
            msg = str(e).splitlines()[0] if str(e) else ""
            stdout.write(f"err {type(e).__name__}: {msg}\n")
        stdout.flush()
