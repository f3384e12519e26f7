"""Shared helpers of the reliability tests (tests/e2e/neg_*.py,
tests/e2e/fault_*.py, tests/load/*.py): memory of a process, the nastiest
certificates and CSRs a client could send, and `iotprov check`.

Not a test itself: it lives under lib/ so that the e2e glob does not pick it
up. Each test does `sys.path.insert(0, <dir>/lib)` and imports it next to
api_e2e.
"""
import hashlib
import json
import os
import subprocess
import time

from api_e2e import IOTPROV, openssl, run


def proc_status_kb(pid, field):
    """A /proc/<pid>/status field in kB (VmRSS now, VmHWM its peak), or None
    when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kb(pid):
    return proc_status_kb(pid, "VmRSS")


def check_store(data_dir, pending_grace=None):
    """`iotprov check --json` of a data dir: (exit status, report dict or None,
    stderr)."""
    cmd = [IOTPROV, "check", "--data-dir", data_dir, "--json"]
    if pending_grace is not None:
        cmd += ["--pending-grace", str(pending_grace)]
    r = run(cmd, timeout=300)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        report = None
    return r.returncode, report, r.stderr


# ---- a CSR for a 16,384-bit RSA key, made in about a second ----
#
# Generating a two-prime 16 kbit RSA key takes OpenSSL minutes. The modulus
# a server sees does not tell how many primes it has, so the key here is the
# product of sixteen 1,024-bit primes (each from `openssl prime`, a few ms),
# and the CSR is signed with it by hand (PKCS#1 v1.5, SHA-256, CRT per
# prime). `openssl req -verify` accepts the result.

def _der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def _tlv(tag, content):
    return bytes([tag]) + _der_len(len(content)) + content


def _int(v):
    b = v.to_bytes(v.bit_length() // 8 + 1, "big")  # leading 0 keeps it positive
    return _tlv(0x02, b)


def _seq(*parts):
    return _tlv(0x30, b"".join(parts))


def _oid(dotted):
    nums = [int(x) for x in dotted.split(".")]
    out = bytes([40 * nums[0] + nums[1]])
    for n in nums[2:]:
        enc = [n & 0x7F]
        n >>= 7
        while n:
            enc.append(0x80 | (n & 0x7F))
            n >>= 7
        out += bytes(reversed(enc))
    return _tlv(0x06, out)


def _prime(bits):
    r = subprocess.run(["openssl", "prime", "-generate", "-bits", str(bits)],
                       capture_output=True, text=True, timeout=60, check=True)
    return int(r.stdout.strip())


def rsa_csr_pem(bits=16384, cn="huge-key", prime_bits=1024, e=65537):
    """A PEM CSR whose RSA modulus has exactly `bits` bits, self-signed."""
    nprimes = bits // prime_bits
    for _ in range(20):
        primes = []
        while len(primes) < nprimes - 1:
            p = _prime(prime_bits)
            if (p - 1) % e != 0 and p not in primes:
                primes.append(p)
        n = 1
        for p in primes:
            n *= p
        # the last prime makes the modulus exactly `bits` long
        last = _prime(bits - n.bit_length())
        if (last - 1) % e == 0 or last in primes or (n * last).bit_length() != bits:
            continue
        primes.append(last)
        n *= last
        break
    else:
        raise RuntimeError("could not make a %d-bit modulus" % bits)

    name = _seq(_tlv(0x31, _seq(_oid("2.5.4.3"), _tlv(0x0C, cn.encode()))))
    spki = _seq(_seq(_oid("1.2.840.113549.1.1.1"), b"\x05\x00"),
                _tlv(0x03, b"\x00" + _seq(_int(n), _int(e))))
    info = _seq(_int(0), name, spki, b"\xa0\x00")
    digest_info = (bytes.fromhex("3031300d060960864801650304020105000420") +
                   hashlib.sha256(info).digest())
    k = (bits + 7) // 8
    em = b"\x00\x01" + b"\xff" * (k - len(digest_info) - 3) + b"\x00" + digest_info
    m = int.from_bytes(em, "big")
    # s = m^d mod n by CRT over the primes (Garner's recombination)
    s, mod = 0, 1
    for p in primes:
        sp = pow(m % p, pow(e, -1, p - 1), p)
        # find x = s + mod * t with x = sp (mod p)
        t = ((sp - s) * pow(mod, -1, p)) % p
        s += mod * t
        mod *= p
    assert pow(s, e, n) == m
    sig = s.to_bytes(k, "big")
    der = _seq(info, _seq(_oid("1.2.840.113549.1.1.11"), b"\x05\x00"),
               _tlv(0x03, b"\x00" + sig))
    import base64
    b64 = base64.b64encode(der).decode()
    body = "\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return "-----BEGIN CERTIFICATE REQUEST-----\n%s\n-----END CERTIFICATE REQUEST-----\n" % body


# ---- a certificate chain of any depth under the data dir's issuing CA ----

def deep_chain(work, signer_crt, signer_key, depth):
    """depth intermediate CAs below signer, then a device certificate below
    the last. Returns (leaf PEM, [intermediate PEMs, nearest to the leaf
    first])."""
    with open(os.path.join(work, "int.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
                "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    with open(os.path.join(work, "leaf.ext"), "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid\n")
    crt, key = signer_crt, signer_key
    chain = []
    for i in range(depth + 1):
        name = "leaf" if i == depth else "int%02d" % i
        ext = "leaf.ext" if i == depth else "int.ext"
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", name + ".key",
                cwd=work)
        openssl("req", "-new", "-key", name + ".key", "-subj", "/CN=deep " + name,
                "-out", name + ".csr", cwd=work)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", crt, "-CAkey", key,
                "-set_serial", str(1000 + i), "-days", "2", "-extfile", ext, "-out",
                name + ".crt", cwd=work)
        with open(os.path.join(work, name + ".crt")) as f:
            pem = f.read()
        if i < depth:
            chain.append(pem)
        crt, key = os.path.join(work, name + ".crt"), os.path.join(work, name + ".key")
    chain.reverse()
    return pem, chain


def wait_port_free(port, seconds=10.0):
    """True once nothing listens on 127.0.0.1:port."""
    import socket
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return True
        finally:
            s.close()
        time.sleep(0.05)
    return False


class Iotprovd:
    """iotprovd on a given 127.0.0.1 port (0: any), with its log wherever
    the test says (the data dir may be on a tiny file system). The same
    interface as api_e2e.Daemon, plus kill() (SIGKILL) and the port kept
    for a restart."""

    def __init__(self, data_dir, log_path, port=0, preexec_fn=None):
        from api_e2e import IOTPROVD
        import re
        self.log_path = log_path
        self.log = open(log_path, "a+")
        self.proc = subprocess.Popen(
            [IOTPROVD, "--data-dir", data_dir, "--api-listen", "127.0.0.1:%d" % port],
            stdout=subprocess.PIPE, stderr=self.log, text=True, preexec_fn=preexec_fn)
        line = self.proc.stdout.readline()
        m = re.match(r"iotprovd: listening on (https://127\.0\.0\.1:(\d+))$", line.strip())
        if not m:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("no listening line, got %r; log:\n%s" % (line, self.read_log()))
        self.url, self.port = m.group(1), int(m.group(2))

    def read_log(self):
        self.log.flush()
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        """SIGKILL: no chance to finish anything."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()

    def stop(self):
        """SIGTERM, then the exit status (SIGKILL after 15 s: None)."""
        rc = self.proc.returncode
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = None
        else:
            rc = self.proc.returncode
        self.log.close()
        return rc


def list_all(port, ca, key, path, item_key, token_in="nextToken", token_out="nextToken",
             page_param="maxResults", page=250):
    """Every item of a paged list through signed raw requests."""
    from api_e2e import signed_request
    items, token = [], None
    for _ in range(10000):
        q = "%s?%s=%d" % (path, page_param, page)
        if token:
            import urllib.parse
            q += "&%s=%s" % (token_in, urllib.parse.quote(token, safe=""))
        st, _, body = signed_request(port, ca, key, "GET", q)
        if st != 200:
            raise RuntimeError("%s: %d %r" % (q, st, body[:200]))
        doc = json.loads(body)
        items += doc.get(item_key, [])
        token = doc.get(token_out)
        if not token:
            return items
    raise RuntimeError("%s: more than 10000 pages" % path)


def audit_events(port, ca, key):
    """Every event of the audit log (GET /iotprov/audit), oldest first."""
    from api_e2e import signed_request
    out, after = [], 0
    for _ in range(100000):
        st, _, body = signed_request(port, ca, key, "GET",
                                     "/iotprov/audit?after=%d&limit=1000" % after)
        if st != 200:
            raise RuntimeError("audit: %d %r" % (st, body[:200]))
        doc = json.loads(body)
        evs = doc.get("events", [])
        if not evs:
            return out
        out += evs
        after = evs[-1]["id"]
    raise RuntimeError("audit: too many events")


def wait_for_health(port, ca, seconds=15.0):
    """True once GET /healthz answers 200."""
    from api_e2e import healthy
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if healthy(port, ca):
            return True
        time.sleep(0.1)
    return False


def sanitized(path):
    """True when the program at path is built with AddressSanitizer (its
    freed memory sits in a quarantine, so RSS tells little unless the
    quarantine is made small: see asan_small_quarantine)."""
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def asan_small_quarantine():
    """Makes programs started from now on keep at most 4 MB of freed memory
    in ASan's quarantine (the default is 256 MB), keeping the options the
    caller set (detect_leaks...)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
        "quarantine_size_mb=4:thread_local_quarantine_size_kb=256"
