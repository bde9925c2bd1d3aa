"""The namespace hosts' libvirt (tests/cluster.py): each host runs its own
virtlogd and libvirtd in its network, mount and UTS namespaces, with its own
/run, /var/lib/libvirt, /etc/libvirt, ... (no agents here).

Checked: the hosts' daemons are apart (own hostname, host UUID, socket, no
network defined) and reach each other over TCP; a TCG domain booting the
test guest starts on h0 (its pid file is h0's own, its channel answers), a
SIGKILLed libvirtd leaves its QEMU running and, restarted, lists the domain
running again; a peer-to-peer live migration moves it to h1, where alone it
runs and answers; and close() after h1's libvirtd was killed leaves no
daemon, QEMU or namespace, and the kernel's owner restored.

Needs root, `ip netns`, libvirtd and qemu-system-x86_64; skipped otherwise.
"""
import os
import re
import shutil
import sys
import tempfile
import time

import pytest

from conftest import REPO, guest_image, wait_for

sys.path.insert(0, os.path.join(REPO, "tests"))
import cluster as lecluster  # noqa: E402

NAME = "lvmig"


@pytest.fixture
def workdir():
    reason = lecluster.unavailable()
    if reason:
        pytest.skip(reason)
    d = tempfile.mkdtemp(prefix="le-ct-libvirt-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def domain_xml(h, kernel, initrd):
    return f"""<domain type='qemu'>
  <name>{NAME}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>console=ttyS0 quiet loadease.ip={h.vm_ip(0)}/24 loadease.sink={h.br_ip}:9</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <interface type='bridge'>
      <source bridge='br0'/><target dev='le{NAME}'/><model type='virtio'/><rom enabled='no'/>
    </interface>
    <memballoon model='virtio'><stats period='2'/></memballoon>
    <channel type='unix'><target type='virtio' name='org.loadease.guestload'/></channel>
    <serial type='pty'/>
  </devices>
</domain>
"""


def guest_status(h, timeout):
    """The guest's `status` over its channel, whose socket path libvirt
    chose inside host h."""
    path = h.channel_path(NAME)
    assert path.startswith("/var/lib/libvirt/qemu/channel/"), path

    def ask():
        with h.connect_unix(path, 2) as s:
            s.sendall(b"status\n")
            line = s.recv(4096).decode()
        return "uptime_s" in line and line
    return wait_for(ask, timeout, f"the guest on {h.id} to answer on {path}", interval=0.5)


def test_each_host_has_its_own_libvirtd(workdir):
    with lecluster.Cluster(2, workdir, None, "t", agents=False) as c:
        uuids = set()
        for h in c.hosts:
            assert h.run("hostname").stdout.strip() == h.hostname
            caps = h.virsh("capabilities").stdout
            uuids.add(re.search(r"<uuid>([^<]+)</uuid>", caps).group(1))
            assert h.virsh("net-list", "--all", "--name").stdout.strip() == "", h.id
            pid = h.libvirtd_pid()
            assert pid and os.readlink(f"/proc/{pid}/ns/mnt") == \
                os.readlink(f"/proc/{h.holder.pid}/ns/mnt"), h.id
            assert h.run("test", "-S", "/run/libvirt/libvirt-sock").returncode == 0
        assert uuids == {h.host_uuid for h in c.hosts} and len(uuids) == 2
        # the hosts reach each other's libvirtd over the test network
        h0, h1 = c.hosts
        assert h1.run("virsh", "-c", h0.libvirt_tcp_uri, "uri").stdout.strip() == \
            h0.libvirt_tcp_uri
    assert not any(h.ns in lecluster._netns_list() for h in c.hosts)
    assert c.teardown_errors == []


def test_a_domain_outlives_its_libvirtd_and_migrates(workdir):
    if not shutil.which(lecluster.QEMU):
        pytest.skip(f"{lecluster.QEMU} is not installed")
    images = os.path.join(workdir, "images")  # a copy: its owner is checked
    os.makedirs(images)
    kernel, initrd = (shutil.copy(p, images) for p in guest_image())
    c = lecluster.Cluster(2, workdir, None, "t", images_dir=images, agents=False)
    with c:
        h0, h1 = c.hosts
        xml = os.path.join(workdir, "domain.xml")
        with open(xml, "w") as f:
            f.write(domain_xml(h0, kernel, initrd))
        h0.virsh("define", xml)
        t0 = time.monotonic()
        h0.virsh("start", NAME)
        print(f"\nvirsh start: {time.monotonic() - t0:.2f} s")
        pid = int(h0.run("cat", f"/run/libvirt/qemu/{NAME}.pid").stdout)
        assert h0.qemu_pids() == [pid] and lecluster._is_qemu(pid)
        assert not os.path.exists(f"/run/libvirt/qemu/{NAME}.pid")  # not the root's
        guest_status(h0, 60)
        print(f"guest answers {time.monotonic() - t0:.1f} s after start")

        h0.kill_libvirtd()
        assert lecluster._pid_alive(pid) and h0.libvirtd_pid() is None
        t0 = time.monotonic()
        h0.start_libvirtd()
        wait_for(lambda: h0.domains() == [NAME], 10, "the restarted libvirtd to list it")
        print(f"restarted libvirtd lists it after {time.monotonic() - t0:.2f} s")
        assert h0.virsh("domstate", NAME).stdout.strip() == "running"
        assert h0.qemu_pids() == [pid]

        t0 = time.monotonic()
        h0.virsh("migrate", "--live", "--p2p", "--persistent", "--undefinesource", NAME,
                 h1.libvirt_tcp_uri)
        print(f"virsh migrate --live --p2p: {time.monotonic() - t0:.2f} s")
        assert h0.domains(all=True) == [] and h0.qemu_pids() == []
        assert h1.domains() == [NAME]
        pid1 = int(h1.run("cat", f"/run/libvirt/qemu/{NAME}.pid").stdout)
        assert h1.qemu_pids() == [pid1] and pid1 != pid
        assert not lecluster._pid_alive(pid)
        assert guest_status(h1, 10)

        h1.kill_libvirtd()  # close() must still stop the QEMU it left
        daemons = [h0.libvirtd_pid(), h0.virtlogd_pid(), h1.virtlogd_pid()]
        holders = [h.holder.pid for h in c.hosts]
    assert c.teardown_errors == []
    assert lecluster.qemu_pids(workdir) == [] and not lecluster._pid_alive(pid1)
    assert not any(lecluster._pid_alive(p) for p in daemons + holders)
    assert not any(h.ns in lecluster._netns_list() for h in c.hosts)
    st = os.stat(kernel)
    assert (st.st_uid, st.st_gid) == (os.getuid(), os.getgid())
    assert [a for a in os.listxattr(kernel) if "libvirt" in a] == []
