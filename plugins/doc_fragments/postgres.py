# -*- coding: utf-8 -*-
# Copyright: nfamily.ops contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  via:
    description:
      - How the PostgreSQL client tools reach the database. They always run inside the project's postgres container,
        because a prod nself host does not publish the database port.
      - V(nself) runs C(nself exec [-i] <postgres_service> ...); V(docker) runs C(docker exec [-i] <PROJECT_NAME>_<postgres_service> ...).
    type: str
    choices: [nself, docker]
    default: nself
  postgres_service:
    description: The compose service of the database.
    type: str
    default: postgres
notes:
  - The database and user are C(POSTGRES_DB) and C(POSTGRES_USER) of the env cascade, as nself uses them
    (C(POSTGRES_DB) falls back to C(PROJECT_NAME), nself's own default).
"""
