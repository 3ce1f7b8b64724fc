"""Throwaway PKI for the TLS tests, made with the openssl CLI in a temp dir:
a CA, server certificates (CN localhost, SAN DNS:localhost and IP:127.0.0.1),
client certificates with a CN or with SANs, one revoked client and its CRL."""
import os
import subprocess

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _run(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), r.stderr))
    return r.stdout


class PKI:
    def __init__(self, directory):
        self.dir = str(directory)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = self.path("ca.crt")
        self.ca_key = self.path("ca.key")
        _run(["req", "-x509"] + EC + ["-keyout", self.ca_key, "-out", self.ca, "-days", "2",
                                      "-subj", "/CN=ferromq test CA",
                                      "-addext", "basicConstraints=critical,CA:TRUE",
                                      "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)
        with open(self.path("index.txt"), "w"):
            pass
        with open(self.path("crlnumber"), "w") as f:
            f.write("1000\n")
        with open(self.path("ca.cnf"), "w") as f:
            f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s\ncrlnumber = %s\n"
                    "default_md = sha256\ndefault_crl_days = 2\n"
                    "certificate = %s\nprivate_key = %s\n"
                    % (self.path("index.txt"), self.path("crlnumber"), self.ca, self.ca_key))

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, cn, serial, san=None, server=False):
        """Signs a new key's certificate; returns (cert path, key path)."""
        key, csr, crt = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".crt")
        _run(["req", "-new"] + EC + ["-keyout", key, "-out", csr, "-subj", "/CN=" + cn], self.dir)
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = CA:FALSE\n")
            f.write("extendedKeyUsage = %s\n" % ("serverAuth" if server else "clientAuth"))
            if san:
                f.write("subjectAltName = %s\n" % san)
        _run(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
              "-set_serial", str(serial), "-days", "2", "-out", crt, "-extfile", ext], self.dir)
        return crt, key

    def server(self, name="server", serial=100):
        return self.issue(name, "localhost", serial, san="DNS:localhost,IP:127.0.0.1", server=True)

    def revoke(self, crt):
        """Revokes crt and writes a fresh CRL; returns its path."""
        cnf = self.path("ca.cnf")
        _run(["ca", "-config", cnf, "-revoke", crt], self.dir)
        crl = self.path("crl.pem")
        _run(["ca", "-config", cnf, "-gencrl", "-out", crl], self.dir)
        return crl

    def empty_crl(self):
        crl = self.path("crl.pem")
        _run(["ca", "-config", self.path("ca.cnf"), "-gencrl", "-out", crl], self.dir)
        return crl
