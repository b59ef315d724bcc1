# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  state_dir:
    description:
      - Directory on the managed host that holds the runbook framework's state (C(locks/), C(runs/), C(runs.jsonl)).
      - Created with mode 0700 when missing; every file in it is written atomically with mode 0600.
    type: path
    default: /var/lib/nfamily-ops
"""
