# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  project_dir:
    description:
      - The nself project directory on the managed host, the one holding C(docker-compose.yml) and the C(.env*) files.
      - nself has no project option; modules run it with this directory as the working directory.
    type: path
    required: true
  nself_bin:
    description:
      - Name or path of the nself executable on the managed host.
    type: str
    default: nself
  environment:
    description:
      - Force the nself environment (V(dev), V(staging), V(prod)) through E(NSELF_ENV).
      - When not set, nself reads C(ENV=) from the project's C(.env) file. A plain E(ENV) variable is ignored by nself
        when C(.env) sets one, which is why this option uses E(NSELF_ENV).
    type: str
    choices: [dev, staging, prod]
requirements:
  - nself 0.9.8 or newer on the managed host.
notes:
  - nself is always run with an argv list, with its standard input on C(/dev/null) unless a module answers a prompt,
    and with ANSI colour codes and spinner carriage returns stripped from its output.
  - The exit code of nself is never trusted on its own; modules read the state back (C(status --json), C(health --json)).
"""
