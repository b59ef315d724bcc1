"""Offline stand-in for ansible-test's get-pip bootstrap script.

ansible-test downloads get-pip.py from ci-files.testing.ansible.com, which this machine cannot
reach. This script does the same job with what is reachable: ensurepip bootstraps the pip that
ships with Python, then pip installs the requested packages (e.g. pip==24.2) from PyPI.
tests/bin/test.sh copies it to ~/.ansible/test/cache/get_pip_<version>.py.
"""
import subprocess
import sys

# get-pip.py's own options; pip install has no equivalent (it installs neither by default here).
GET_PIP_ONLY = {"--no-setuptools", "--no-wheel"}

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q"] + args))
