"""Test certificate authorities and server certificates, made with the openssl CLI.
Two unrelated CAs: "good" signs the servers' certificates, "other" is the wrong CA a client
may be given. Keys are EC P-256 (fast to make)."""

import os
import subprocess

OPENSSL = "openssl"


def _run(*args, cwd):
    subprocess.run([OPENSSL] + list(args), cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


class Pki:
    def __init__(self, workdir):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.ca_good = self._make_ca("good", "Salvo Test CA")
        self.ca_other = self._make_ca("other", "Unrelated Test CA")
        self._certs = {}

    def _make_ca(self, tag, cn):
        key, pem = "ca-%s.key" % tag, "ca-%s.pem" % tag
        _run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", key, "-out", pem, "-days", "3", "-subj", "/CN=%s" % cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=self.dir)
        return os.path.join(self.dir, pem)

    def server_cert(self, hostname, ca="good"):
        """(certfile, keyfile) for hostname (CN and subjectAltName), signed by the CA."""
        k = (hostname, ca)
        if k in self._certs:
            return self._certs[k]
        base = "srv-%s-%s" % (hostname, ca)
        with open(os.path.join(self.dir, base + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=DNS:%s\n" % hostname)
        _run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", base + ".key", "-out", base + ".csr", "-subj",
             "/CN=%s" % hostname, cwd=self.dir)
        _run("x509", "-req", "-in", base + ".csr", "-CA", "ca-%s.pem" % ca, "-CAkey",
             "ca-%s.key" % ca, "-CAcreateserial", "-out", base + ".pem", "-days", "2",
             "-extfile", base + ".ext", cwd=self.dir)
        self._certs[k] = (os.path.join(self.dir, base + ".pem"),
                          os.path.join(self.dir, base + ".key"))
        return self._certs[k]
