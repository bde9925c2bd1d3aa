"""Redis Sentinel: agents and the controller find the master through three
sentinels (Debian's redis-sentinel), follow a failover and lose nothing.

A namespace cluster (tests/cluster.py) runs against the cluster's Redis as
the master, with a replica and three sentinels beside it on the test
network. The master is killed (SIGKILL) while the agents sample and while a
migration is in flight. Sentinel promotes the replica; every agent and the
controller find it (a lost connection or a READONLY reply makes them ask
again), and then: no sample is lost (with `redis.wait_replicas = 1` a
sample leaves an agent's buffer only once the replica has it, so each
host's stream on the new master is contiguous and nothing was dropped), no
VM is lost, the registry is exact and the migration settles. The old
master comes back empty (as a restarted machine would) and Sentinel makes
it the new master's replica: until then no replica acknowledges, so the
agents keep their samples, and send them once it does."""
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from conftest import (Controller, _die_with_parent, assert_contiguous, cluster_guest_image,
                      free_tcp_port, guest_status, running_cluster, vm_qemus, wait_for)

TOKEN = "sentinel-token"
MASTER = "lem"


class Ha:
    """A replica of the cluster's Redis and three sentinels watching it."""

    def __init__(self, c):
        self.c, self.ip = c, c.bridge_ip
        self.dir = os.path.join(c.workdir, "ha")
        os.makedirs(self.dir, exist_ok=True)
        self.procs = []
        self.replica_port = free_tcp_port()
        self.replica = self._spawn(
            ["redis-server", "--bind", self.ip, "--port", str(self.replica_port),
             "--protected-mode", "no",
             "--dir", self.dir, "--dbfilename", "replica.rdb", "--appendonly", "yes",
             "--appendfilename", "replica.aof", "--appenddirname", "replica-aof",
             "--appendfsync", "always", "--save", "",
             "--replicaof", self.ip, str(c.redis_port),
             "--logfile", os.path.join(self.dir, "replica.log")])
        self.sentinel_ports = [free_tcp_port() for _ in range(3)]
        for i, port in enumerate(self.sentinel_ports):
            conf = os.path.join(self.dir, f"sentinel{i}.conf")
            with open(conf, "w") as f:
                # bound to the test network only
                f.write(f"port {port}\nbind {self.ip}\nprotected-mode no\ndir {self.dir}\n"
                        f"logfile {os.path.join(self.dir, f'sentinel{i}.log')}\n"
                        f"sentinel monitor {MASTER} {self.ip} {c.redis_port} 2\n"
                        f"sentinel down-after-milliseconds {MASTER} 1000\n"
                        f"sentinel failover-timeout {MASTER} 6000\n"
                        f"sentinel parallel-syncs {MASTER} 1\n")
            self._spawn(["redis-sentinel", conf])
        self.sentinels = ",".join(f"{self.ip}:{p}" for p in self.sentinel_ports)

    def restart_old_master(self):
        self._spawn(["redis-server", "--bind", self.ip, "--port", str(self.c.redis_port),
                     "--protected-mode", "no", "--dir", self.dir, "--dbfilename", "old.rdb",
                     "--save", "", "--appendonly", "no",
                     "--logfile", os.path.join(self.dir, "old-master.log")])

    def _spawn(self, argv):
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.procs.append(p)
        return p

    def sentinel(self, i=0):
        import redis
        return redis.Redis(host=self.ip, port=self.sentinel_ports[i], decode_responses=True,
                           socket_timeout=3)

    def master_addr(self):
        for i in range(3):
            try:
                a = self.sentinel(i).execute_command("SENTINEL", "get-master-addr-by-name",
                                                     MASTER)
                if a:
                    return f"{a[0]}:{a[1]}"
            except OSError:
                continue
        return None

    def client(self, port):
        import redis
        return redis.Redis(host=self.ip, port=port, decode_responses=True, socket_timeout=5)

    def ready(self):
        """The replica in sync and every sentinel aware of it and of the others."""
        def up():
            info = self.client(self.replica_port).info("replication")
            if info.get("master_link_status") != "up":
                return False
            for i in range(3):
                m = self.sentinel(i).execute_command("SENTINEL", "master", MASTER)
                d = dict(zip(m[::2], m[1::2]))
                if int(d.get("num-slaves", 0)) < 1 or int(d.get("num-other-sentinels", 0)) < 2:
                    return False
            return True
        wait_for(up, 30, "the replica in sync and three sentinels that know each other")

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def test_master_killed_while_sampling_and_migrating_loses_nothing():
    image = cluster_guest_image()
    imgdir = os.path.dirname(image[0])
    with running_cluster(2, imgdir, TOKEN, prefix="le-ct-sentinel-", agents=False) as c:
        ha = Ha(c)
        ctl = None
        try:
            ha.ready()
            assert ha.master_addr() == c.redis_address
            redis_s = {"redis.sentinels": ha.sentinels, "redis.master_name": MASTER,
                       "redis.timeout_ms": 1000, "redis.backoff_max_ms": 1000}
            for h in c.hosts:
                h.write_config({**redis_s, "redis.wait_replicas": 1, "redis.wait_ms": 500,
                                "host.cpu": 2, "host.mem": 2048, "host.net": 100,
                                "vm.migrate_bandwidth_mbit": 32})
                h.start()
            ctl = Controller(c.workdir, c.redis_address,
                             {**redis_s, "controller.mode": "off"}, ip=c.bridge_ip,
                             name="s1", token=TOKEN)
            ctl.start()
            old = c.redis()
            h0, h1 = c.hosts
            spec = {"name": "sa", "vcpus": 1, "mem_mib": 256,
                    "kernel": os.path.basename(image[0]), "initrd": os.path.basename(image[1]),
                    "append": f"console=ttyS0 quiet loadease.ip={h0.vm_ip(0)}/24 "
                              f"loadease.sink={h0.br_ip}:9"}
            st, vm = h0.http("POST", "/v1/vms", spec)
            assert st == 201, (st, vm)
            wait_for(lambda: guest_status(h0, vm["serial_socket"], 2), 60, "guest sa")
            wait_for(lambda: ctl.http("GET", "/v1/vms/sa")[0] == 200, 10,
                     "the controller to see sa")
            for h in c.hosts:
                wait_for(lambda: old.xlen(f"ts:host:{h.id}") >= 4, 10, f"{h.id} sampling")

            out = {}
            t = threading.Thread(target=lambda: out.update(
                r=ctl.http("POST", "/v1/vms/sa/migrate", {"to": "h1"}, timeout=180)),
                daemon=True)
            t.start()
            wait_for(lambda: old.hget("migration:sa", "phase") == "transfer", 30,
                     "sa migrating")
            t_kill = time.monotonic()
            c.redis_proc.send_signal(signal.SIGKILL)
            c.redis_proc.wait(timeout=10)

            new_addr = wait_for(lambda: (lambda a: a if a and a != c.redis_address else None)(
                ha.master_addr()), 30, "Sentinel to promote the replica")
            failover_s = time.monotonic() - t_kill
            new = ha.client(ha.replica_port)
            assert new_addr == f"{ha.ip}:{ha.replica_port}"
            # the old master's machine comes back, empty: Sentinel makes it
            # the new master's replica, and the samples the agents kept
            # (no replica acknowledged them meanwhile) are confirmed
            # (once every sentinel has the new master and the failover has
            # ended: an empty master back before that could be taken as the
            # master again and its emptiness replicated, Redis's documented
            # hazard of masters without persistence)
            def failover_over():
                for i in range(3):
                    m = ha.sentinel(i).execute_command("SENTINEL", "master", MASTER)
                    d = dict(zip(m[::2], m[1::2]))
                    if int(d["port"]) != ha.replica_port or "failover" in d["flags"]:
                        return False
                return new.info("replication")["role"] == "master"
            wait_for(failover_over, 30, "every sentinel to agree on the new master")
            ha.restart_old_master()

            def on_new_master():
                for h in c.hosts:
                    st, j = h.http("GET", "/healthz")
                    if st != 200 or not j["redis"] or j["backlog"] != 0:
                        return False
                st, j = ctl.http("GET", "/v1/cluster")
                return st == 200 and j["redis"] == "up" and j["leader"]
            wait_for(on_new_master, 30, "agents and the controller on the new master")
            switched_s = time.monotonic() - t_kill
            print(f"\nfailover: Sentinel promoted the replica {failover_s:.1f} s after the "
                  f"kill; agents and controller on it (backlogs sent) at {switched_s:.1f} s")
            for h in c.hosts:
                assert "Sentinel names a new master" in h.log(), h.log(3000)

            t.join(180)
            assert not t.is_alive(), "the migration call never returned"
            st, j = out["r"]
            assert st == 200, (st, j)
            wait_for(lambda: new.hget("vm_configs:sa", "host_id") == "h1" and
                     not new.exists("migration:sa"), 30, "the migration settled in the registry")
            assert new.smembers("vms_in_host:h1") == {"sa"}
            assert new.smembers("vms_in_host:h0") == set()
            q = vm_qemus(c, "sa")
            assert list(q) == ["h1"] and len(q["h1"]) == 1, q
            assert int(new.hget("vm_configs:sa", "pid")) == q["h1"][0]
            wait_for(lambda: (lambda r: r[0] == 200 and r[1]["host"] == "h1" and
                              not r[1]["migrating"])(ctl.http("GET", "/v1/vms/sa")), 10,
                     "the controller to show sa on h1")

            # no sample lost: every host's stream on the new master is
            # contiguous from its first entry, and no agent dropped any
            for h in c.hosts:
                key = f"ts:host:{h.id}"
                entries = [(int(i.split("-")[0]), f) for i, f in new.xrange(key)]
                seqs = assert_contiguous(entries, key)
                if seqs[0] != 1:  # what the servers did, for the one who reads this
                    logs = "".join(
                        f"\n--- {n}\n" + open(os.path.join(ha.dir, n)).read()[-4000:]
                        for n in sorted(os.listdir(ha.dir)) if n.endswith(".log"))
                    raise AssertionError(f"{key} starts at seq {seqs[0]}; {h.id}'s log:\n"
                                         f"{h.log(3000)}{logs}")
                st, m = h.http("GET", "/v1/host")
                assert st == 200 and m["redis"]["dropped"] == 0, m
                assert m["samples"] - seqs[-1] <= 3, (m["samples"], seqs[-1])
            # the new master serves writes and the agents keep writing there
            n = new.xlen("ts:host:h0")
            wait_for(lambda: new.xlen("ts:host:h0") > n + 2, 5, "samples after the failover")

            # a switchover (SENTINEL FAILOVER): the master is demoted to a
            # replica while the agents write to it; they ask Sentinel again,
            # and still nothing is lost
            wait_for(lambda: new.info("replication").get("connected_slaves", 0) >= 1, 20,
                     "the old master to replicate the new one")
            ha.sentinel(0).execute_command("SENTINEL", "FAILOVER", MASTER)
            back = wait_for(lambda: (lambda a: a if a == c.redis_address else None)(
                ha.master_addr()), 30, "the switchover back to the first port")
            wait_for(on_new_master, 30, "agents and the controller after the switchover")
            third = c.redis()
            for h in c.hosts:
                key = f"ts:host:{h.id}"
                n3 = third.xlen(key)
                wait_for(lambda: third.xlen(key) > n3 + 2, 10, f"{key} growing on {back}")
                assert_contiguous([(int(i.split("-")[0]), f) for i, f in third.xrange(key)],
                                  key)
            # (Sentinel closes the demoted master's client connections, so the
            # agents learn it from a lost connection, or a READONLY reply when
            # a write comes first)
            for h in c.hosts:
                assert h.log().count("Sentinel names a new master") >= 2, h.log(3000)
        finally:
            if ctl:
                ctl.stop()
            ha.close()
