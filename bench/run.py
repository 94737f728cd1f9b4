"""Benchmark regsweep against Distribution's `garbage-collect` on one generated store.

    python bench/run.py fs  --repos 400 --tags 25 --repeat 3
    python bench/run.py s3  --repos 60 --tags 20 --repeat 3

For each backend it generates a store (bench/generate.py), then runs, in turn and --repeat times:
  regsweep gc STORE --grace 0s --json                      (plan only)
  regsweep gc STORE --grace 0s --delete-untagged --json    (plan only)
  docker-registry garbage-collect --dry-run CONFIG
  docker-registry garbage-collect --dry-run --delete-untagged CONFIG
and prints a Markdown table: median wall time, peak RSS of the process, and on S3 the number of
requests moto_server served, with the ratios regsweep/Distribution. On the filesystem it also
times the floor `find ROOT -type f | wc -l`. It checks that regsweep's planned blob set equals
Distribution's eligible set (without --delete-untagged, where the semantics match).

Everything runs on 127.0.0.1; moto_server is started by the script.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ELIGIBLE = re.compile(r"blob eligible for deletion: (sha256:[0-9a-f]{64})")


@dataclass
class Measure:
    name: str
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system seconds
    rss_kb: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    env.update(extra or {})
    return env


def compile_package() -> None:
    """Byte-compile regsweep where it is imported from, as installing it does: a checkout
    (an editable install, or ``PYTHONDONTWRITEBYTECODE`` set) would otherwise compile every
    module on each run, ~50 ms that no installed copy spends. Distribution is compiled too."""
    import regsweep

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(regsweep.__file__).parent)],
        check=True,
        capture_output=True,
    )


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system, of the process and its children), peak RSS
    in KiB (GNU time -v) and standard output of ``cmd``."""
    full = ["/usr/bin/time", "-v", *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(full, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(
        float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    )
    return seconds, cpu, int(m.group(1)) if m else 0, proc.stdout


class Moto:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.log = workdir / "moto.log"
        self.log_file = open(self.log, "w")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("moto_server did not start")

    def requests_so_far(self) -> int:
        return sum(
            1
            for line in open(self.log, errors="replace")
            if '" 2' in line or '" 3' in line or '" 4' in line or '" 5' in line
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log_file.close()


def registry_config(path: Path, storage: dict) -> None:
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "version": 0.1,
                "log": {"level": "error"},
                "storage": {**storage, "delete": {"enabled": True}},
                "http": {"addr": f"127.0.0.1:{free_port()}"},
            }
        )
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("backend", choices=["fs", "s3"])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the generated store")
    args, gen_args = ap.parse_known_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="regsweep-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    env = clean_env(
        {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    moto = None
    try:
        if args.backend == "fs":
            root = work / "store"
            shutil.rmtree(root, ignore_errors=True)
            store = str(root)
            registry_config(work / "config.yml", {"filesystem": {"rootdirectory": str(root)}})
        else:
            moto = Moto(work)
            env["AWS_ENDPOINT_URL"] = moto.url
            import boto3

            boto3.client(
                "s3",
                endpoint_url=moto.url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            ).create_bucket(Bucket="bench")
            store = "s3://bench"
            registry_config(
                work / "config.yml",
                {
                    "s3": {
                        "bucket": "bench",
                        "region": "us-east-1",
                        "regionendpoint": moto.url,
                        "accesskey": "testing",
                        "secretkey": "testing",
                        "secure": False,
                        "rootdirectory": "/",
                    }
                },
            )
        t0 = time.monotonic()
        gen = subprocess.run(
            [sys.executable, str(HERE / "generate.py"), store, *gen_args],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        generated = json.loads(gen.stdout)
        gen_seconds = time.monotonic() - t0
        py = [sys.executable, "-m", "regsweep"]
        compile_package()
        plan_file = work / "plan.parquet"
        runs = {
            "regsweep gc (plan)": [*py, "gc", store, "--grace", "0s", "--json"],
            "regsweep gc --delete-untagged (plan)": [
                *py,
                "gc",
                store,
                "--grace",
                "0s",
                "--delete-untagged",
                "--json",
            ],
            "distribution garbage-collect --dry-run": [
                "docker-registry",
                "garbage-collect",
                "--dry-run",
                str(work / "config.yml"),
            ],
            "distribution garbage-collect --dry-run -m": [
                "docker-registry",
                "garbage-collect",
                "--dry-run",
                "--delete-untagged",
                str(work / "config.yml"),
            ],
        }
        if args.backend == "fs":
            runs["floor: find ROOT -type f | wc -l"] = ["sh", "-c", f"find {store} -type f | wc -l"]
        results: dict[str, Measure] = {name: Measure(name) for name in runs}
        outputs: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, cmd in runs.items():
                before = moto.requests_so_far() if moto else 0
                seconds, cpu, rss, out = run_measured(cmd, env)
                results[name].seconds.append(seconds)
                results[name].cpu.append(cpu)
                results[name].rss_kb.append(rss)
                if moto:
                    results[name].requests.append(moto.requests_so_far() - before)
                outputs[name] = out
        # The plan's blob set, from one more run that writes it (not timed: the timed runs
        # are the plan alone, as Distribution's dry runs are).
        subprocess.run(
            [*runs["regsweep gc (plan)"], "--plan-out", str(plan_file)],
            env=env,
            capture_output=True,
            check=True,
        )
        ours = {r["digest"] for r in pq.read_table(plan_file).to_pylist() if r["kind"] == "blob"}
        theirs = set(ELIGIBLE.findall(outputs["distribution garbage-collect --dry-run"]))
        print(
            report(
                args.backend, generated, gen_seconds, results, ours, theirs, gen_args, args.repeat
            )
        )
    finally:
        if moto:
            moto.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(
    backend: str,
    generated: dict,
    gen_seconds: float,
    results: dict[str, Measure],
    ours: set[str],
    theirs: set[str],
    gen_args: list[str],
    repeat: int,
) -> str:
    n_objects = generated["stats"]["writes"]
    lines = [
        f"### {backend}: {generated['stats']['blobs'] + generated['stats']['orphans']} blobs, "
        f"~{n_objects} objects written (generate.py {' '.join(gen_args)}; {gen_seconds:.0f} s to generate)",
        "",
        f"median of {repeat} runs | seconds | CPU seconds | peak RSS MiB"
        + (" | requests" if backend == "s3" else ""),
        "---|---|---|---" + ("|---" if backend == "s3" else ""),
    ]
    for m in results.values():
        row = (
            f"{m.name} | {m.median:.2f} | {statistics.median(m.cpu):.2f} | "
            f"{max(m.rss_kb) / 1024:.0f}"
        )
        if backend == "s3":
            row += f" | {int(statistics.median(m.requests))}"
        lines.append(row)
    a = results["regsweep gc (plan)"]
    b = results["distribution garbage-collect --dry-run"]
    c = results["regsweep gc --delete-untagged (plan)"]
    d = results["distribution garbage-collect --dry-run -m"]
    lines += [
        "",
        f"- ratio plan / `--dry-run`: **{a.median / b.median:.2f}x** time"
        + (
            f", {statistics.median(a.requests) / max(statistics.median(b.requests), 1):.3f}x requests"
            if backend == "s3"
            else ""
        ),
        f"- ratio plan --delete-untagged / `--dry-run -m`: **{c.median / d.median:.2f}x** time"
        + (
            f", {statistics.median(c.requests) / max(statistics.median(d.requests), 1):.3f}x requests"
            if backend == "s3"
            else ""
        ),
    ]
    if "floor: find ROOT -type f | wc -l" in results:
        f = results["floor: find ROOT -type f | wc -l"]
        lines.append(f"- ratio plan / `find` floor: **{a.median / f.median:.2f}x**")
    same = ours == theirs
    lines.append(
        f"- planned blob set equals Distribution's eligible set: **{same}** ({len(ours)} vs {len(theirs)})"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
