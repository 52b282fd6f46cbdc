#!/usr/bin/env python3
"""Reads strace logs of connect/sendto/sendmsg/sendmmsg and fails on any address that could
leave the machine.

usage: strace_egress.py [--self-check] [--nscd-is-violation] [NAME=]LOG ...

The logs come from
    strace -f -qq --seccomp-bpf -yy -s 0 -e signal=none -o LOG \
           -e trace=connect,sendto,sendmsg,sendmmsg,io_uring_setup,execve,execveat,clone,clone3,fork,vfork COMMAND
(deploy/airgap-test.sh). The process calls (execve, clone, fork) only say which program made
each socket call: the table names it, and the list of programs run shows that strace followed
every child (the extraction workers, pdftoppm, tesseract). Every socket call is classified, whether it succeeded or not (an
attempt is an attempt; inside the test's network namespace a non-loopback connect fails with
ENETUNREACH, and it must still fail the test):

  allowed   AF_INET 127.0.0.0/8, AF_INET6 ::1 and ::ffff:127.0.0.0/104 (loopback)
            AF_UNIX (a socket on this machine's file system or abstract namespace), except
              the name-service sockets below
            AF_NETLINK (messages to the kernel or to another process on this machine: the
              family has no way off the host; glibc uses it for getifaddrs)
            AF_UNSPEC connect (dissolves a datagram socket's association; no peer)
            no address at all (sendto with NULL, sendmsg with msg_name=NULL, sendmmsg) on an
              already-connected socket: its peer was checked at its connect. Where strace's
              -yy annotation names the peer (TCP/UDP "local->remote"), that peer is checked too.
  violation io_uring_setup: what is submitted through a ring (IORING_OP_CONNECT, _SENDMSG)
              makes no system call that strace could show, so a ring fails closed;
            any other AF_INET/AF_INET6 address; any address on port 53 (a DNS query, even to a
              loopback stub resolver such as systemd-resolved's 127.0.0.53: a name lookup
              means something wanted to reach a host by name); a connect to
              systemd-resolved's varlink socket (a hosts lookup through nss-resolve); any
              other family (AF_PACKET, AF_VSOCK, AF_BLUETOOTH, ...); a traced line this parser
              cannot read (fail closed).
  note      a connect to nscd's socket (/var/run/nscd/socket, /run/nscd/socket): glibc tries it
              before every passwd/group/hosts lookup, so it alone is no evidence of a DNS
              lookup; the test makes sure no nscd listens there, so a hosts lookup still
              falls through to port 53, which is a violation. With --nscd-is-violation
              (the test passes it when an nscd socket exists) these are violations too: nscd
              would resolve names with the host's network, outside the namespace.

Prints a table (verdict, family, address, calls, count, results, logs) and the violations;
exit status 1 if there is any violation, 0 otherwise, 2 on bad usage.
"""
from __future__ import annotations

import collections
import ipaddress
import re
import sys

SYSCALLS = ("connect", "sendto", "sendmsg", "sendmmsg")

CALL_RE = re.compile(
    r"^(?:\[pid\s+)?(?P<pid>\d+)\]?\s+(?P<call>[a-z_0-9]+)\((?P<fd>-?\d+)"
    r"(?:<(?P<fdkind>[A-Za-z0-9_-]+):\[(?P<fdinfo>[^\]]*(?:\][^\]>]*)*)\]>)?(?P<rest>.*)$"
)
# Lines with no pid (strace -o without -f) are accepted too.
CALL_NOPID_RE = re.compile(r"^(?P<call>[a-z_0-9]+)\((?P<fd>-?\d+)(?P<rest>.*)$")
RESUMED_RE = re.compile(r"^(?:(?P<pid>\d+)\s+)?<\.\.\. (?P<call>[a-z_0-9]+) resumed>(?P<rest>.*)$")
PROCESS_CALLS = ("execve", "execveat", "clone", "clone3", "fork", "vfork")
PROCESS_RE = re.compile(r"^(?:(?P<pid>\d+)\s+)?(?P<call>execve(?:at)?|clone3?|v?fork)\((?P<rest>.*)$")
RETURN_RE = re.compile(r"=\s+(-?\d+)(?:\s+E[A-Z0-9]+.*)?$")
# Exit and signal notes, and a process that ended (killed, or exec'd by another thread) inside a
# call strace had not stopped at (with --seccomp-bpf it does not know which: "???").
NOISE_RE = re.compile(r"^(?:\d+\s+)?(?:\+\+\+ .* \+\+\+|--- .* ---|\?\?\?\( <detached \.\.\.>)$")
SOCKADDR_RE = re.compile(r"\{sa_family=(?P<family>[^,}]+)(?P<body>[^}]*)\}")
RESULT_RE = re.compile(r"\)\s+=\s+(?P<ret>-?\d+|\?)(?:\s+(?P<errno>E[A-Z0-9]+))?")

NSCD_PATHS = {"/var/run/nscd/socket", "/run/nscd/socket"}
NSCD_VERDICT = "note"
RESOLVED_PREFIXES = ("/run/systemd/resolve/", "/var/run/systemd/resolve/")


def classify_ip(text: str, port: int | None) -> tuple[str, str]:
    """(verdict, reason) for an IP address and port."""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return "violation", f"unreadable IP address {text!r}"
    if port == 53:
        return "violation", "DNS query (port 53)"
    mapped = getattr(ip, "ipv4_mapped", None)
    if ip.is_loopback or (mapped is not None and mapped.is_loopback):
        return "allowed", "loopback"
    return "violation", "not loopback"


def parse_sockaddr(family: str, body: str) -> tuple[str, str, str, str]:
    """(family, address, verdict, reason) for one decoded sockaddr."""
    family = family.strip()
    if family == "AF_INET":
        port = re.search(r"sin_port=htons\((\d+)\)", body)
        addr = re.search(r'sin_addr=inet_addr\("([^"]*)"\)', body)
        if not (port and addr):
            return family, body.strip(", "), "violation", "unreadable AF_INET address"
        verdict, reason = classify_ip(addr.group(1), int(port.group(1)))
        return family, f"{addr.group(1)}:{port.group(1)}", verdict, reason
    if family == "AF_INET6":
        port = re.search(r"sin6_port=htons\((\d+)\)", body)
        addr = re.search(r'inet_pton\(AF_INET6,\s*"([^"]*)"', body)
        if not (port and addr):
            return family, body.strip(", "), "violation", "unreadable AF_INET6 address"
        verdict, reason = classify_ip(addr.group(1), int(port.group(1)))
        return family, f"[{addr.group(1)}]:{port.group(1)}", verdict, reason
    if family == "AF_UNIX":
        path = re.search(r'sun_path=(@?)"((?:[^"\\]|\\.)*)"', body)
        if not path:
            return family, "(unnamed)", "allowed", "local socket"
        shown = path.group(1) + path.group(2)
        if path.group(1) == "" and path.group(2) in NSCD_PATHS:
            return family, shown, NSCD_VERDICT, "nscd (glibc tries it before passwd/group/hosts lookups)"
        if path.group(1) == "" and path.group(2).startswith(RESOLVED_PREFIXES):
            return family, shown, "violation", "systemd-resolved (a host name lookup)"
        return family, shown, "allowed", "local socket"
    if family == "AF_NETLINK":
        pid = re.search(r"nl_pid=(\d+)", body)
        groups = re.search(r"nl_groups=([0-9a-fx]+)", body)
        shown = f"nl_pid={pid.group(1) if pid else '?'} nl_groups={groups.group(1) if groups else '?'}"
        return family, shown, "allowed", "kernel/local netlink"
    if family == "AF_UNSPEC":
        return family, "(none)", "allowed", "dissolves a datagram association"
    return family, body.strip(", ") or "?", "violation", f"family {family} not allowed"


def parse_fd_peer(kind: str | None, info: str | None) -> tuple[str, str, str, str] | None:
    """The peer that strace -yy shows for a connected TCP/UDP socket, if any."""
    if not kind or not info or "->" not in info:
        return None
    if not kind.startswith(("TCP", "UDP", "UDPLITE", "SCTP")):
        return None
    remote = info.split("->", 1)[1]
    match = re.fullmatch(r"\[?([^\]]*?)\]?:(\d+)", remote)
    if not match:
        return kind, remote, "violation", "unreadable peer"
    verdict, reason = classify_ip(match.group(1), int(match.group(2)))
    family = "AF_INET6" if kind.endswith("v6") else "AF_INET"
    shown = f"[{match.group(1)}]:{match.group(2)}" if family == "AF_INET6" else remote
    return family, shown, verdict, reason + " (peer of a connected socket)"


def parse_line(line: str):
    """None for lines to ignore; else a list of (call, family, address, verdict, reason, result)."""
    line = line.rstrip("\n")
    if not line.strip() or RESUMED_RE.match(line) or NOISE_RE.match(line) or PROCESS_RE.match(line):
        return None
    if re.match(r"^(?:\d+\s+)?io_uring_setup\(", line):
        return [("io_uring_setup", "io_uring", "(a ring: its operations are not traced)", "violation",
                 "io_uring in use: its socket operations would be invisible to strace", "?")]
    match = CALL_RE.match(line) or CALL_NOPID_RE.match(line)
    if not match or match.group("call") not in SYSCALLS:
        return [("?", "?", line[:160], "violation", "line not understood (fail closed)", "?")]
    call = match.group("call")
    rest = match.group("rest")
    result_match = RESULT_RE.search(rest)
    if "<unfinished ...>" in rest:
        result = "unfinished"
    elif result_match:
        result = result_match.group("errno") or ("ok" if result_match.group("ret") != "-1" else "-1")
    else:
        result = "?"
    entries = []
    for sockaddr in SOCKADDR_RE.finditer(rest):
        family, address, verdict, reason = parse_sockaddr(sockaddr.group("family"), sockaddr.group("body"))
        entries.append((call, family, address, verdict, reason, result))
    if "sa_family=" in rest and not entries:
        entries.append((call, "?", rest[:160], "violation", "address not understood (fail closed)", result))
    if not entries:
        if call == "connect":
            return [(call, "?", rest[:160], "violation", "connect without a readable address", result)]
        groups = match.groupdict()
        peer = parse_fd_peer(groups.get("fdkind"), groups.get("fdinfo"))
        if peer:
            family, address, verdict, reason = peer
            entries.append((call, family, address, verdict, reason, result))
        else:
            kind = groups.get("fdkind") or "fd"
            entries.append((call, kind, "(no address: connected socket)", "allowed",
                            "peer checked at its connect", result))
    return entries


class Processes:
    """Which program each pid of one log ran: from execve, and clone/fork for the children."""

    def __init__(self):
        self.exe = {}          # pid -> program path after a successful execve
        self.parent = {}       # child pid -> parent pid
        self.pending = {}      # pid -> (call, path) of an unfinished clone/execve
        self.runs = collections.Counter()

    def _done(self, pid, call, path, rest):
        returned = RETURN_RE.search(rest)
        value = int(returned.group(1)) if returned else None
        if call.startswith("execve"):
            if value == 0 and path:
                self.exe[pid] = path
                self.runs[path] += 1
        elif value and value > 0:
            self.parent[value] = pid

    def feed(self, line: str) -> bool:
        """True when the line was a process call (or its resumption)."""
        line = line.rstrip("\n")
        match = PROCESS_RE.match(line)
        if match:
            pid, call, rest = match.group("pid") or "0", match.group("call"), match.group("rest")
            path = None
            if call == "execve":
                found = re.match(r'"((?:[^"\\]|\\.)*)"', rest)
                path = found.group(1) if found else None
            elif call == "execveat":
                found = re.match(r'-?\d+(?:<[^>]*>)?,\s*"((?:[^"\\]|\\.)*)"', rest)
                path = found.group(1) if found else None
            if "<unfinished ...>" in rest:
                self.pending[pid] = (call, path)
            else:
                self._done(pid, call, path, rest)
            return True
        match = RESUMED_RE.match(line)
        if match and match.group("call") in PROCESS_CALLS:
            pid = match.group("pid") or "0"
            call, path = self.pending.pop(pid, (match.group("call"), None))
            self._done(pid, call, path, match.group("rest"))
            return True
        return False

    def program(self, pid: str) -> str:
        seen = set()
        while pid and pid not in seen:
            seen.add(pid)
            if pid in self.exe:
                return self.exe[pid].rsplit("/", 1)[-1]
            pid = str(self.parent[int(pid)]) if int(pid) in self.parent else None
        return "?"


def analyse(logs: list[tuple[str, str]]):
    rows = collections.OrderedDict()
    total = 0
    programs = collections.OrderedDict()
    for name, path in logs:
        processes = Processes()
        calls = []
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if processes.feed(line):
                    continue
                parsed = parse_line(line)
                if parsed is None:
                    continue
                pid = re.match(r"^(\d+)\s", line)
                calls.append((pid.group(1) if pid else "0", parsed))
        programs[name] = processes.runs
        for pid, parsed in calls:
            where = f"{name}:{processes.program(pid)}"
            for call, family, address, verdict, reason, result in parsed:
                total += 1
                key = (verdict, family, address, reason)
                row = rows.setdefault(key, {"calls": collections.Counter(), "count": 0,
                                            "results": collections.Counter(), "logs": set()})
                row["calls"][call] += 1
                row["count"] += 1
                row["results"][result] += 1
                row["logs"].add(where)
    return rows, total, programs


def render(rows, total: int, programs=None) -> tuple[str, int]:
    order = {"violation": 0, "note": 1, "allowed": 2}
    table = [("verdict", "family", "address", "calls", "count", "results", "seen in")]
    for (verdict, family, address, _reason), row in sorted(
        rows.items(), key=lambda item: (order.get(item[0][0], 9), item[0][1], item[0][2])
    ):
        table.append((
            verdict.upper() if verdict == "violation" else verdict,
            family,
            address,
            ",".join(sorted(row["calls"])),
            str(row["count"]),
            ",".join(f"{k}x{v}" if v > 1 else k for k, v in sorted(row["results"].items())),
            ",".join(sorted(row["logs"])),
        ))
    widths = [min(max(len(r[i]) for r in table), 60) for i in range(len(table[0]))]
    lines = []
    for i, r in enumerate(table):
        lines.append("  ".join(cell[:60].ljust(widths[j]) for j, cell in enumerate(r)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    violations = [(k, v) for k, v in rows.items() if k[0] == "violation"]
    notes = [(k, v) for k, v in rows.items() if k[0] == "note"]
    for name, runs in (programs or {}).items():
        listed = ", ".join(f"{p.rsplit('/', 1)[-1]}" + (f" x{n}" if n > 1 else "") for p, n in runs.items())
        lines.append(f"programs run in {name}: {listed or '(none seen)'}")
    lines.append(f"{total} traced socket calls, {len(rows)} distinct destinations, "
                 f"{sum(v['count'] for _, v in violations)} violating calls")
    for (verdict, family, address, reason), row in violations:
        lines.append(f"VIOLATION: {family} {address}: {reason} "
                     f"({row['count']}x in {','.join(sorted(row['logs']))})")
    for (verdict, family, address, reason), row in notes:
        lines.append(f"note: {family} {address}: {reason}")
    return "\n".join(lines), (1 if violations else 0)


SELF_CHECK = [
    # (line, expected verdicts)
    ('14700 connect(3<TCP:[1142713]>, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("192.0.2.1")}, 16) = -1 ENETUNREACH (Network is unreachable)', ["violation"]),
    ('14700 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(8443), sin_addr=inet_addr("127.0.0.1")}, 16) = 0', ["allowed"]),
    ('14700 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(8443), sin_addr=inet_addr("127.45.0.9")}, 16) = 0', ["allowed"]),
    ('14700 connect(3<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 EINPROGRESS (Operation now in progress)', ["allowed"]),
    ('14700 connect(3<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(9), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = -1 EINPROGRESS', ["allowed"]),
    ('14700 connect(3<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:8.8.8.8", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH', ["violation"]),
    ('14700 connect(3<TCPv6:[1]>, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "2001:db8::1", &sin6_addr), sin6_scope_id=0}, 28) = -1 ENETUNREACH', ["violation"]),
    ('14740 connect(3<UDP:[1]>, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("127.0.0.53")}, 16) = 0', ["violation"]),
    ('14740 sendmmsg(3<UDP:[127.0.0.1:49742->127.0.0.53:53]>, [...], 2, MSG_NOSIGNAL) = 1', ["violation"]),
    ('14740 sendto(3<UDP:[10.0.0.2:4000->198.51.100.7:443]>, ""..., 29, MSG_NOSIGNAL, NULL, 0) = 29', ["violation"]),
    ('14740 sendto(3<UDP:[127.0.0.1:4000->127.0.0.1:5000]>, ""..., 29, MSG_NOSIGNAL, NULL, 0) = 29', ["allowed"]),
    ('16512 sendto(11<UNIX-STREAM:[1116234->1116233]>, ""..., 1, MSG_NOSIGNAL, NULL, 0) = 1', ["allowed"]),
    ('14700 sendto(3<UDP:[0.0.0.0:59895]>, ""..., 1, 0, {sa_family=AF_INET, sin_port=htons(9), sin_addr=inet_addr("198.51.100.7")}, 16) = -1 ENETUNREACH', ["violation"]),
    ('14700 sendmsg(3<UDP:[0.0.0.0:38871]>, {msg_name=NULL, msg_namelen=0, msg_iov=[...], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 1', ["allowed"]),
    ('14700 sendmsg(3<UDP:[1]>, {msg_name={sa_family=AF_INET, sin_port=htons(123), sin_addr=inet_addr("203.0.113.5")}, msg_namelen=16, msg_iov=[...], msg_iovlen=1, msg_controllen=0, msg_flags=0}, 0) = 48', ["violation"]),
    ('14700 connect(4<UNIX-STREAM:[1]>, {sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110) = -1 ENOENT (No such file or directory)', ["note"]),
    ('14700 connect(4<UNIX-STREAM:[1]>, {sa_family=AF_UNIX, sun_path="/run/systemd/resolve/io.systemd.Resolve"}, 110) = 0', ["violation"]),
    ('14700 connect(4<UNIX-STREAM:[1]>, {sa_family=AF_UNIX, sun_path=@"abstract-name"}, 16) = -1 ECONNREFUSED', ["allowed"]),
    ('14733 sendto(4<NETLINK:[1]>, ..., 16, 0, {sa_family=AF_NETLINK, nl_pad=0x1b2e, nl_pid=0, nl_groups=00000000}, 12) = 16', ["allowed"]),
    ('14733 connect(4<UDP:[1]>, {sa_family=AF_UNSPEC, sa_data="\\0\\0\\0\\0"}, 16) = 0', ["allowed"]),
    ('14733 connect(4<PACKET:[1]>, {sa_family=AF_PACKET, sll_protocol=htons(ETH_P_ALL), sll_ifindex=2}, 20) = 0', ["violation"]),
    ('14733 connect(4<UDP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("93.184.216.34")}, 16 <unfinished ...>', ["violation"]),
    ("14733 <... connect resumed>) = 0", None),
    ('19736 clone3({flags=CLONE_VM|CLONE_THREAD, child_tid=0x7f, parent_tid=0x7f, exit_signal=0, stack=0x7f, stack_size=0x7fff80, tls=0x7f} => {parent_tid=[19737]}, 88) = 19737', None),
    ("19735 vfork( <unfinished ...>", None),
    ('19736 execve("/usr/bin/python3", [...], 0x55d59824dcf0 /* 35 vars */ <unfinished ...>', None),
    ("19736 <... execve resumed>)             = 0", None),
    ("14733 +++ exited with 0 +++", None),
    ("14733 io_uring_setup(256, {flags=0, sq_thread_cpu=0, sq_thread_idle=0}) = 5", ["violation"]),
    ("21429 ???( <detached ...>", None),
    ('21429 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("192.0.2.7")}, 16 <detached ...>', ["violation"]),
    ("14733 --- SIGTERM {si_signo=SIGTERM, si_code=SI_USER, si_pid=1, si_uid=0} ---", None),
    ("14733 something strace printed that nobody expected", ["violation"]),
    ('14733 connect(4<UDP:[1]>, 0x7ffd0000, 16) = -1 EFAULT', ["violation"]),
]


def self_check() -> int:
    failures = 0
    for line, expected in SELF_CHECK:
        parsed = parse_line(line)
        got = None if parsed is None else [entry[3] for entry in parsed]
        if got != expected:
            failures += 1
            print(f"self-check FAILED: {line!r}: expected {expected}, got {parsed}")
    print(f"parser self-check: {len(SELF_CHECK) - failures}/{len(SELF_CHECK)} canned strace lines classified as expected")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    global NSCD_VERDICT
    if argv[:1] == ["--self-check"]:
        return self_check()
    if argv[:1] == ["--nscd-is-violation"]:
        NSCD_VERDICT = "violation"
        argv = argv[1:]
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    logs = []
    for arg in argv:
        name, sep, path = arg.partition("=")
        logs.append((name, path) if sep else (arg.rsplit("/", 1)[-1], arg))
    rows, total, programs = analyse(logs)
    text, status = render(rows, total, programs)
    print(text)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
