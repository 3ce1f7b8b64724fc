"""What the headless-browser tests share: Debian's Chromium, and npm
packages installed into a cache beside the broker binary (Debian ships
neither MQTT.js's browser build nor playwright-core)."""
import os
import shutil
import subprocess

from conftest import broker_bin


def chromium_bin():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def npm_package(name, version):
    """Installs name@version once; returns its node_modules folder."""
    cache = os.path.join(os.path.dirname(broker_bin()), "npm-cache", "%s-%s" % (name, version))
    modules = os.path.join(cache, "node_modules")
    if not os.path.exists(os.path.join(modules, name, "package.json")):
        assert shutil.which("npm"), ("npm is missing: %s comes from the npm registry (NodeSource's nodejs "
                                     "ships npm; with Debian's nodejs install npm)" % name)
        os.makedirs(cache, exist_ok=True)
        r = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--no-save", "--prefix", cache,
                            "%s@%s" % (name, version)], capture_output=True, text=True, timeout=240)
        assert r.returncode == 0, "npm install %s failed:\n%s%s" % (name, r.stdout, r.stderr)
    return modules
