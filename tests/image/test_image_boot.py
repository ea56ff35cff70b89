"""The box booted for real: systemd as PID 1, the unit's real sandbox, first boot, the service
and hardware watchdogs, the failure unit, and updates with their health window.

A disk image is made from the test rootfs of tests/support/image_support.py (Debian with its own
kernel), with edged installed by image/install-into-rootfs exactly as the image build does, a
provisioning file on /boot/firmware and two signed update bundles staged in /var/tmp/ci. QEMU
boots it (tests/support/vm.py) with an emulated i6300ESB watchdog; the Sinqro simulator runs on the
host and the guest reaches it, and nothing else, through a QEMU user-network forward.

The tests run in file order on one booted machine, as a box lives: first boot, orders,
a frozen daemon, a good update, a bad update rolled back, a crash loop. Debian 13 (trixie,
what Raspberry Pi OS is built on now) runs in ``make test``; Debian 12 (bookworm) in
``make test-slow``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import json
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import SimulatorProcess
from image_support import (
    PYTHON,
    add_migration,
    build_wheel,
    crash_after_ready,
    installed_rootfs,
    make_bundle,
    prefetch,
    release_key,
    require_tools,
    wheelhouse,
)
from vm import VM, build_disk, prepare_guest

from edged.simulator.server import DEFAULT_SERVER_TOKEN, DEFAULT_USER_TOKEN

prefetch("trixie")  # cold caches: debootstrap while the other tests run

# One test worker runs both image modules: they share the cache and the CPU-heavy VM.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400), pytest.mark.xdist_group("image")]

MAC = "52:54:00:ed:9e:d1"  # first boot names the box after its last 4 hex digits
SINQRO = "10.0.2.100:8900"  # the simulator, as the guest sees it
GOOD, BAD = "0.99.1", "0.99.2"
HEALTH_WINDOW = 40  # over one WatchdogSec (30 s): the watchdog must be fed within it


class Box:
    def __init__(self, vm: VM, sim: SimulatorProcess, suite: str) -> None:
        self.vm = vm
        self.sim = sim
        self.suite = suite

    def create_orders(self, count: int) -> set[int]:
        r = httpx.post(f"{self.sim.root}/_sim/orders", json={"count": count}, timeout=10)
        r.raise_for_status()
        return {int(o["id"]) for o in httpx.get(f"{self.sim.root}/_sim/orders").json()}

    def query(self, sql: str) -> list[list[object]]:
        """Rows of ``sql`` on the box's journal, read-only, as the edged user (root must
        not create journal files the daemon could then not open)."""
        script = (
            "import json, sqlite3, sys; "
            "db = sqlite3.connect('file:/var/lib/edged/edged.sqlite3?mode=ro', uri=True); "
            "print(json.dumps([list(r) for r in db.execute(sys.argv[1])]))"
        )
        out = self.vm.ok(f"runuser -u edged -- python3 -c {shlex.quote(script)} {shlex.quote(sql)}")
        rows: list[list[object]] = json.loads(out)
        return rows

    def stored_orders(self) -> set[int]:
        return {int(str(row[0])) for row in self.query("SELECT id FROM orders")}

    def wait_for_orders(self, wanted: set[int], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        have: set[int] = set()
        while time.monotonic() < deadline:
            have = (
                self.stored_orders()
                if self.vm.sh("test -e /var/lib/edged/edged.sqlite3").rc == 0
                else set()
            )
            if wanted <= have:
                return
            time.sleep(2)
        raise AssertionError(f"{what}: missing {sorted(wanted - have)}\n{self.vm.tail(2000)}")

    def running_pid(self) -> str:
        """The PID of a running edged. On a busy host the emulated guest can be between two
        runs of edged, when MainPID reads 0 (and "kill -STOP 0" would freeze the agent)."""
        return self.vm.wait_until(
            'p=$(systemctl show edged -p MainPID --value); [ "$p" -gt 0 ] && '
            'systemctl is-active -q edged && echo "$p"',
            "edged running",
            300,
        ).strip()

    def prop(self, unit: str, name: str) -> str:
        return self.vm.ok(f"systemctl show {unit} -p {name} --value").strip()

    def health(self) -> dict[str, object]:
        script = (
            "import urllib.request; "
            "url = 'http://127.0.0.1:8080/health'; "
            "print(urllib.request.urlopen(url, timeout=5).read().decode())"
        )
        out = self.vm.ok(f"python3 -c {shlex.quote(script)}")
        result: dict[str, object] = json.loads(out)
        return result

    def events(self) -> list[dict[str, object]]:
        out = self.vm.ok("cat /var/lib/edged/box-events.jsonl 2>/dev/null || true")
        return [json.loads(line) for line in out.splitlines()]

    def user_version(self) -> int:
        return int(str(self.query("PRAGMA user_version")[0][0]))


def _guest_config(sim: SimulatorProcess) -> tuple[str, dict[str, Any]]:
    info = sim.info()
    port = info["baseUrl"].split("//", 1)[1].split("/", 1)[0]
    return (
        "# Test box: Sinqro is the simulator on the host; no GPIO in a VM.\n"
        "[sinqro]\n"
        f'base_url = "{info["baseUrl"].replace(port, SINQRO)}"\n'
        f'websocket_url = "{info["websocketUrl"].replace(port, SINQRO)}"\n'
        "poll_interval = 2.0\nstatus_refresh_interval = 5.0\n"
        "reconnect_min = 0.5\nreconnect_max = 5.0\nrequest_timeout = 10.0\n"
        '[panel]\npin_factory = "mock"\n'
    ), info


def _prepare_and_boot(suite: str) -> tuple[VM, SimulatorProcess]:
    """Bundles, an installed rootfs made bootable, its disk image, a simulator, QEMU booted."""
    work = Path(tempfile.mkdtemp(prefix=f"edged-boot-{suite}-"))
    atexit.register(shutil.rmtree, work, True)  # runs last: after the VM stopped
    started = time.monotonic()
    wheels = wheelhouse(PYTHON[suite])
    key, _ = release_key()
    good = make_bundle(build_wheel(work / "dist-good", version=GOOD), wheels, key, work / "b")
    bad_wheel = build_wheel(work / "dist-bad", version=BAD, change=migrate_and_crash)
    bad = make_bundle(bad_wheel, wheels, key, work / "c")
    root = work / "rootfs"
    installed_rootfs(suite, root)
    prepare_guest(root)
    sim = SimulatorProcess(log_path=work / "sim.log")
    sim.start()
    try:
        config, info = _guest_config(sim)
        dropin = root / "etc/edged/edged.toml.d/90-ci.toml"
        dropin.write_text(config)
        dropin.chmod(0o640)
        firmware = root / "boot/firmware"
        firmware.mkdir(parents=True, exist_ok=True)
        (firmware / "edged-provision.toml").write_text(
            f'[sinqro]\nserver_token = "{DEFAULT_SERVER_TOKEN}"\n'
            f'user_token = "{DEFAULT_USER_TOKEN}"\nselling_point_id = {info["sellingPointId"]}\n'
            '[box]\nname = "Casa Pepe"\n'
        )
        staged = root / "var/tmp/ci"
        staged.mkdir(parents=True)
        for bundle in (good, bad):
            shutil.copy(bundle, staged / bundle.name)
            shutil.copy(bundle.with_name(bundle.name + ".sig"), staged / f"{bundle.name}.sig")
        shutil.copy(sorted((root / "boot").glob("vmlinuz-*"))[-1], work / "vmlinuz")
        shutil.copy(sorted((root / "boot").glob("initrd.img-*"))[-1], work / "initrd.img")
        disk = work / "disk.raw"
        build_disk(root, disk)
        shutil.rmtree(root)
        prepared = time.monotonic() - started
        vm = VM(
            disk, work / "vmlinuz", work / "initrd.img", work, mac=MAC, forwards={SINQRO: sim.port}
        )
        atexit.register(vm.stop)
        vm.start()
    except BaseException:
        sim.stop()
        raise
    atexit.register(sim.stop)
    print(f"\n{suite}: disk ready in {prepared:.0f} s, booted in {vm.booted_after:.0f} s")
    return vm, sim


def migrate_and_crash(tree: Path) -> None:
    """Version BAD: a schema migration, then an exit 8 s after READY=1."""
    add_migration(tree)
    crash_after_ready(tree, seconds=8)


_boots: dict[str, concurrent.futures.Future[tuple[VM, SimulatorProcess]]] = {}
_booter = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="boot")


def start_boot(suite: str) -> concurrent.futures.Future[tuple[VM, SimulatorProcess]]:
    """Prepare and boot ``suite``'s box on a background thread (once). tests/conftest.py
    calls this when collection is over, so the minutes of building and booting overlap with
    the tests that run before these."""
    if suite not in _boots:
        _boots[suite] = _booter.submit(_prepare_and_boot, suite)
    return _boots[suite]


@pytest.fixture(
    scope="module", params=["trixie", pytest.param("bookworm", marks=pytest.mark.extended)]
)
def box(request: pytest.FixtureRequest) -> Iterator[Box]:
    require_tools("debootstrap", "qemu-system-x86_64", "mkfs.ext4", "socat", "ssh-keygen")
    suite: str = request.param
    vm, sim = start_boot(suite).result()
    try:
        yield Box(vm, sim, suite)
    finally:
        vm.stop()
        sim.stop()


def test_first_boot_names_the_box_and_applies_the_provisioning_file(box: Box) -> None:
    vm = box.vm
    vm.wait_until("systemctl is-active edged-provision.service", "provisioning ran", 600)
    # The host name carries the box id, as its MQTT topics and fleet reports do.
    name = "edged-" + vm.ok("/opt/edged/venv/bin/edged box-id").strip()
    assert name != "edged-"
    assert vm.ok("cat /etc/hostname").strip() == name
    assert vm.ok("hostname").strip() == name
    assert vm.sh("test -e /boot/firmware/edged-provision.toml").rc != 0  # applied, removed
    assert vm.ok("stat -c '%U:%G %a' /etc/edged/edged.env").split() == ["root:edged", "600"]
    shown = vm.ok("set -a; . /etc/edged/edged.env; edged check-config /etc/edged/edged.toml --show")
    assert '"name": "Casa Pepe"' in shown


def test_edged_is_active_after_ready_in_its_sandbox(box: Box) -> None:
    vm = box.vm
    vm.wait_until("systemctl is-active edged.service", "edged active", 600)
    assert box.prop("edged", "Type") == "notify"
    # sysusers and tmpfiles ran at boot; the daemon runs as edged, confined.
    assert box.prop("systemd-sysusers", "Result") == "success"
    assert vm.ok("stat -c '%U:%G %a' /etc/edged /var/lib/edged").split() == [
        "root:edged", "750", "edged:edged", "750",
    ]  # fmt: skip
    pid = box.running_pid()
    status = vm.ok(f"cat /proc/{pid}/status")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    assert fields["NoNewPrivs"].strip() == "1"
    assert fields["Seccomp"].strip() == "2"
    assert int(fields["CapEff"].strip(), 16) == 0
    assert vm.ok(f"ps -o user= -p {pid} 2>/dev/null || stat -c %U /proc/{pid}").strip() == "edged"
    assert int(vm.ok(f"grep 'Max open files' /proc/{pid}/limits").split()[3]) >= 4096
    taken = box.create_orders(3)
    box.wait_for_orders(taken, "the orders reach the journal")
    vm.wait_until(
        "python3 -c 'import json, urllib.request; "
        'h = json.load(urllib.request.urlopen("http://127.0.0.1:8080/health", timeout=5)); '
        'raise SystemExit(h["link"] != "online")\'',
        "the link is online",
    )


def test_the_hardware_watchdog_is_armed(box: Box) -> None:
    vm = box.vm
    assert vm.ok("systemctl show -p RuntimeWatchdogUSec --value").strip() == "14s"
    assert "i6300ESB" in vm.ok("cat /sys/class/watchdog/watchdog0/identity")
    assert vm.ok("cat /sys/class/watchdog/watchdog0/state").strip() == "active"


def test_a_frozen_daemon_is_killed_by_the_watchdog_and_restarted(box: Box) -> None:
    vm = box.vm
    restarts = int(box.prop("edged", "NRestarts"))
    pid = box.running_pid()
    vm.ok(f"kill -STOP {pid}")
    vm.wait_until(
        f'[ "$(systemctl show edged -p MainPID --value)" != {pid} ] && systemctl is-active edged',
        "a new edged after the watchdog fired",
        300,
    )
    assert int(box.prop("edged", "NRestarts")) > restarts
    assert "watchdog" in vm.ok("journalctl -b -u edged --no-pager | grep -i watchdog").lower()


@pytest.mark.extended  # two pip installs under TCG take ~13 minutes: make test-slow
def test_a_good_update_keeps_every_order(box: Box) -> None:
    vm = box.vm
    before = box.create_orders(2)
    box.wait_for_orders(before, "orders before the update")
    update = vm.sh(
        f"HEALTH_WINDOW={HEALTH_WINDOW} /opt/edged/bin/update-edged "
        f"/var/tmp/ci/edged-{GOOD}-x86_64.bundle",
        timeout=1200,
    )
    assert update.rc == 0, str(update)
    assert box.health()["version"] == GOOD
    assert box.stored_orders() >= before
    assert box.events()[-1]["kind"] == "update"
    assert box.events()[-1]["to"] == GOOD
    assert "signature" in update.err and "verified" in update.err
    logged = vm.ok("journalctl -b -t update-edged --no-pager")
    assert f"edged {GOOD} is active" in logged


@pytest.mark.extended
def test_an_update_that_fails_its_health_window_is_rolled_back_with_the_journal(
    box: Box,
) -> None:
    vm = box.vm
    before = box.create_orders(2)
    box.wait_for_orders(before, "orders before the bad update")
    schema = box.user_version()
    update = vm.sh(
        f"HEALTH_WINDOW={HEALTH_WINDOW} /opt/edged/bin/update-edged "
        f"/var/tmp/ci/edged-{BAD}-x86_64.bundle",
        timeout=1200,
    )
    assert update.rc != 0, str(update)
    assert "rolled back" in update.err
    vm.wait_until("systemctl is-active edged", "the previous version runs again", 300)
    assert box.health()["version"] == GOOD
    assert box.user_version() == schema  # the migrated journal was replaced by the backup
    assert vm.ok("ls /var/lib/edged").count("edged.sqlite3.failed-update-") >= 1
    event = box.events()[-1]
    assert (event["kind"], event["from"], event["to"]) == ("rollback", BAD, GOOD)
    assert event["journal_restored"] is True
    # Orders that arrived while the bad version ran are fetched again by the reconcile.
    later = box.create_orders(1)
    box.wait_for_orders(before | later, "every order after the rollback")


def test_a_crash_loop_fires_the_failure_unit_and_edged_comes_back(box: Box) -> None:
    vm = box.vm
    # The watchdog restart earlier was cured by the restart: it raised no alarm.
    assert vm.ok("journalctl -b -u edged-failure -p crit --no-pager -q").strip() == ""
    vm.ok(
        "mkdir -p /run/systemd/system/edged.service.d /run/systemd/system/edged-failure.service.d"
        " && printf '[Service]\\nExecStart=\\nExecStart=/bin/sh -c \"exit 1\"\\n'"
        " > /run/systemd/system/edged.service.d/crash.conf"
        # The retry after 5 minutes, shortened for the test.
        " && printf '[Service]\\nExecStart=\\nExecStart=/opt/edged/venv/bin/edged failure-led"
        " --config /etc/edged/edged.toml --retry-after 20\\n'"
        " > /run/systemd/system/edged-failure.service.d/short.conf"
        " && systemctl daemon-reload"
    )
    vm.sh("systemctl restart edged", timeout=120)
    vm.wait_until("systemctl is-active edged-failure", "OnFailure= started the alarm", 300)
    # systemd gave up (StartLimitBurst=): failed, no restart pending.
    assert box.prop("edged", "ActiveState") == "failed"
    assert box.prop("edged", "SubState") == "failed"
    crit = vm.wait_until(
        "journalctl -b -u edged-failure -p crit --no-pager | grep 'NOT being taken'",
        "the alarm's line at priority CRIT",
        120,
    )
    assert "edged.service FAILED" in crit
    # The crash cause goes away; the alarm's own retry brings edged back, nobody touches it.
    vm.ok("rm /run/systemd/system/edged.service.d/crash.conf && systemctl daemon-reload")
    vm.wait_until("systemctl is-active edged", "edged started again by the alarm", 300)
    assert vm.sh("systemctl is-active edged-failure").out.strip() != "active"
