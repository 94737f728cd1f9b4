"""Benchmark regsweep against Distribution's `garbage-collect` on one generated store.

    python bench/run.py fs     --repos 400 --tags 25 --repeat 3
    python bench/run.py s3     --repos 60 --tags 20 --repeat 3
    python bench/run.py azure  --repos 60 --tags 20 --repeat 3

For each backend it generates a store (bench/generate.py), then runs, in turn and --repeat times:
  regsweep gc STORE --grace 0s --json                      (plan only)
  regsweep gc STORE --grace 0s --delete-untagged --json    (plan only)
  docker-registry garbage-collect --dry-run CONFIG
  docker-registry garbage-collect --dry-run --delete-untagged CONFIG
and prints a Markdown table: median wall time, peak RSS of the process, and on S3 and Azure the
number of requests the server (moto_server, Azurite) served, with the ratios regsweep/Distribution.
On the filesystem it also times the floor `find ROOT -type f | wc -l`, and, where regsweep lists
with bfs, its plan once more listed with GNU find (REGSWEEP_FS_WALKER=find). It checks that regsweep's
planned blob set equals Distribution's eligible set (without --delete-untagged, where the
semantics match). A `docker-registry` that cannot use the store (Debian's 2.8.2 is built without
the azure driver) is reported as not run, with its error, and regsweep is measured alone.

Everything runs on 127.0.0.1; moto_server and Azurite are started by the script.
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
from typing import Any

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
    module on each run, ~45 ms that no installed copy spends. Distribution is compiled too."""
    import regsweep

    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(regsweep.__file__).parent)],
        check=True,
        capture_output=True,
    )


class Failed(Exception):
    """A measured command exited with an error; the message is its error's last line."""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds (user + system, of the process and its children), peak RSS
    in KiB (GNU time -v) and standard output of ``cmd``. Raises Failed if it fails."""
    full = ["/usr/bin/time", "-v", *cmd]
    t0 = time.monotonic()
    proc = subprocess.run(full, env=env, capture_output=True, text=True, check=False)
    seconds = time.monotonic() - t0
    if proc.returncode != 0:
        print(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-2000:]}", file=sys.stderr)
        # GNU time's report follows the command's own error (on the same line when that
        # ends without a newline).
        error = re.split(r"Command (?:exited with non-zero status|terminated)", proc.stderr)[0]
        lines = [x for x in error.splitlines() if x.strip()]
        raise Failed(lines[-1] if lines else f"exit status {proc.returncode}")
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu = sum(
        float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr)
    )
    return seconds, cpu, int(m.group(1)) if m else 0, proc.stdout


class Server:
    """A storage emulator on loopback, its access log counted for the requests it served."""

    def __init__(self, name: str, cmd: list[str], port: int, workdir: Path) -> None:
        self.port = port
        self.log = workdir / f"{name}.log"
        self.log_file = open(self.log, "w")  # noqa: SIM115 - lives as long as the server
        self.proc = subprocess.Popen(
            cmd, stdout=self.log_file, stderr=subprocess.STDOUT, env=clean_env()
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"{name} did not start (see {self.log})")

    def requests_so_far(self) -> int:
        # Both write an access log line per request: ... "GET /path HTTP/1.1" 200 -
        return sum(
            1
            for line in open(self.log, errors="replace")
            if '" 2' in line or '" 3' in line or '" 4' in line or '" 5' in line
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.log_file.close()


def start_moto(workdir: Path) -> tuple[Server, str]:
    port = free_port()
    cmd = ["moto_server", "-H", "127.0.0.1", "-p", str(port)]
    return Server("moto", cmd, port, workdir), f"http://127.0.0.1:{port}"


AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (  # the emulator's documented, public well-known key
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def start_azurite(workdir: Path) -> tuple[Server, str]:
    azurite = HERE.parent / "node_modules" / ".bin" / "azurite-blob"
    if not azurite.exists():
        raise SystemExit(f"{azurite} is missing: run `npm ci` in {HERE.parent}")
    port = free_port()
    cmd = [
        str(azurite), "--blobHost", "127.0.0.1", "--blobPort", str(port),
        "--location", str(workdir / "azurite"), "--skipApiVersionCheck", "--loose",
        "--disableTelemetry",
    ]  # fmt: skip
    return Server("azurite", cmd, port, workdir), f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"


def registry_config(path: Path, storage: dict[str, Any]) -> None:
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
    ap.add_argument("backend", choices=["fs", "s3", "azure"])
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
    server = None
    try:
        if args.backend == "fs":
            root = work / "store"
            shutil.rmtree(root, ignore_errors=True)
            store = str(root)
            registry_config(work / "config.yml", {"filesystem": {"rootdirectory": str(root)}})
        elif args.backend == "s3":
            server, url = start_moto(work)
            env["AWS_ENDPOINT_URL"] = url
            import boto3

            boto3.client(
                "s3",
                endpoint_url=url,
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
                        "regionendpoint": url,
                        "accesskey": "testing",
                        "secretkey": "testing",
                        "secure": False,
                        "rootdirectory": "/",
                    }
                },
            )
        else:
            shutil.rmtree(work / "azurite", ignore_errors=True)
            server, url = start_azurite(work)
            env["AZURE_STORAGE_CONNECTION_STRING"] = (
                f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
                f"AccountKey={AZURITE_KEY};BlobEndpoint={url};"
            )
            from azure.storage.blob import ContainerClient

            ContainerClient.from_connection_string(
                env["AZURE_STORAGE_CONNECTION_STRING"], "bench"
            ).create_container()
            store = "azure://bench"
            # serviceurl is Distribution 3's endpoint setting; 2.8 has none (and Debian's
            # build has no azure driver at all).
            registry_config(
                work / "config.yml",
                {
                    "azure": {
                        "accountname": AZURITE_ACCOUNT,
                        "accountkey": AZURITE_KEY,
                        "container": "bench",
                        "realm": "core.windows.net",
                        "serviceurl": url,
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
            if walker_name() == "bfs":
                # The plan once more, listed with GNU find as on a machine without bfs.
                runs[WITH_FIND] = ["env", "REGSWEEP_FS_WALKER=find", *runs["regsweep gc (plan)"]]
        not_run = None
        results: dict[str, Measure] = {name: Measure(name) for name in runs}
        outputs: dict[str, str] = {}
        for _ in range(args.repeat):
            for name, cmd in list(runs.items()):
                before = server.requests_so_far() if server else 0
                try:
                    seconds, cpu, rss, out = run_measured(cmd, env)
                except Failed as e:
                    if not name.startswith("distribution") or results[name].seconds:
                        raise SystemExit(f"{name} failed: {e}") from e
                    # A docker-registry that cannot use this store (Debian's has no azure
                    # driver): regsweep is measured alone, and the report says why.
                    not_run = str(e)
                    del runs[name], results[name]
                    continue
                results[name].seconds.append(seconds)
                results[name].cpu.append(cpu)
                results[name].rss_kb.append(rss)
                if server:
                    results[name].requests.append(server.requests_so_far() - before)
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
        dry_run = outputs.get("distribution garbage-collect --dry-run")
        theirs = set(ELIGIBLE.findall(dry_run)) if dry_run is not None else None
        print(
            report(
                args.backend,
                generated,
                gen_seconds,
                results,
                (ours, theirs),
                not_run,
                gen_args,
                args.repeat,
            )
        )
    finally:
        if server:
            server.stop()
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


WITH_FIND = "regsweep gc (plan), listed with GNU find"


def walker_name() -> str:
    """What regsweep lists a filesystem store with here: bfs, find or python."""
    from regsweep.storage.filesystem import _walker

    cmd = _walker()
    return "python" if cmd is None else Path(cmd[0]).name


def walker_version() -> str:
    cmd = {"bfs": ["bfs", "--version"], "find": ["find", "--version"]}.get(walker_name())
    if cmd is None:
        return "os.scandir"
    out = subprocess.run(cmd, capture_output=True, text=True, check=False).stdout
    return out.splitlines()[0] if out else cmd[0]


def report(
    backend: str,
    generated: dict[str, Any],
    gen_seconds: float,
    results: dict[str, Measure],
    blob_sets: tuple[set[str], set[str] | None],
    not_run: str | None,
    gen_args: list[str],
    repeat: int,
) -> str:
    n_objects = generated["stats"]["writes"]
    remote = backend != "fs"
    lines = [
        f"### {backend}: {generated['stats']['blobs'] + generated['stats']['orphans']} blobs, "
        f"~{n_objects} objects written (generate.py {' '.join(gen_args)}; {gen_seconds:.0f} s to generate)",
        "",
        f"median of {repeat} runs | seconds | CPU seconds | peak RSS MiB"
        + (" | requests" if remote else ""),
        "---|---|---|---" + ("|---" if remote else ""),
    ]
    for m in results.values():
        row = (
            f"{m.name} | {m.median:.2f} | {statistics.median(m.cpu):.2f} | "
            f"{max(m.rss_kb) / 1024:.0f}"
        )
        if remote:
            row += f" | {int(statistics.median(m.requests))}"
        lines.append(row)
    lines.append("")
    if not_run is not None:
        lines.append(f"- Distribution's `garbage-collect` not run: `{not_run}`")
    pairs = [
        ("regsweep gc (plan)", "distribution garbage-collect --dry-run", "plan / `--dry-run`"),
        (
            "regsweep gc --delete-untagged (plan)",
            "distribution garbage-collect --dry-run -m",
            "plan --delete-untagged / `--dry-run -m`",
        ),
    ]
    for ours_name, theirs_name, label in pairs:
        if theirs_name not in results:
            continue
        a, b = results[ours_name], results[theirs_name]
        line = f"- ratio {label}: **{a.median / b.median:.2f}x** time"
        if remote:
            requests = statistics.median(a.requests) / max(statistics.median(b.requests), 1)
            line += f", {requests:.3f}x requests"
        lines.append(line)
    if "floor: find ROOT -type f | wc -l" in results:
        a, f = results["regsweep gc (plan)"], results["floor: find ROOT -type f | wc -l"]
        lines.append(
            f"- ratio plan / `find` floor: **{a.median / f.median:.2f}x** "
            f"(regsweep listed with {walker_name()}: `{walker_version()}`)"
        )
        if WITH_FIND in results:
            g = results[WITH_FIND]
            lines.append(
                f"- ratio plan listed with GNU find / `find` floor: {g.median / f.median:.2f}x"
            )
    ours, theirs = blob_sets
    if theirs is None:
        lines.append(f"- planned blobs: {len(ours)} (no Distribution set to compare with)")
    else:
        lines.append(
            f"- planned blob set equals Distribution's eligible set: **{ours == theirs}** "
            f"({len(ours)} vs {len(theirs)})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
