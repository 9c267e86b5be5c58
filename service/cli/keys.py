"""`callrate keys`: the API keys stored in the database (hashed), created, listed, revoked."""

from __future__ import annotations

import argparse
from typing import Any

from service.cli.errors import UsageError, check_database_url, database_errors
from service.cli.serve import settings_of
from service.config import ROLES, STORED_KEY_RECHECK_S


def _keys_create(args: argparse.Namespace) -> int:
    from service.clock import utcnow
    from service.db.migrate import upgrade
    from service.db.session import make_engine, make_sessionmaker
    from service.security import create_key

    settings = settings_of(args)
    url = settings.effective_database_url
    with database_errors():
        upgrade(url=url, migrations_dir=settings.migrations_dir, tariffs_dir=settings.tariffs_dir)
        engine = make_engine(url, pool_size=1)
        with make_sessionmaker(engine).begin() as session:
            key, actor = create_key(session, role=args.role, now=utcnow())
        engine.dispose()
    print(f"{actor.role}={key}  (key id {actor.key_id}; shown once, only its hash is stored)")
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from service.db import repository
    from service.db.session import make_engine, make_sessionmaker

    settings = settings_of(args)
    url = settings.effective_database_url
    check_database_url(url, create=False, can_create=False)
    with database_errors():
        engine = make_engine(url, pool_size=1)
        with make_sessionmaker(engine)() as session:
            for row in repository.all_api_keys(session):
                print(f"{row.key_id}  {row.role}  {row.created_at.isoformat()}")
        engine.dispose()
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from service.clock import utcnow
    from service.db.session import make_engine, make_sessionmaker
    from service.security import Actor, hash_key, key_id_of, revoke_key

    settings = settings_of(args)
    url = settings.effective_database_url
    check_database_url(url, create=False, can_create=False)
    key_id = key_id_of(hash_key(args.key)) if args.key.startswith("cr_") else args.key
    with database_errors():
        engine = make_engine(url, pool_size=1)
        with make_sessionmaker(engine).begin() as session:
            revoked = revoke_key(
                session, key_id=key_id, actor=Actor(key_id="cli", role="admin"), now=utcnow()
            )
        engine.dispose()
    if revoked is None:
        raise UsageError(f"no stored key {key_id} (see callrate keys list)")
    print(f"callrate: revoked {revoked.role} key {revoked.key_id}")
    return 0


def add_parser(commands: Any) -> None:
    """Add `keys create|list|revoke` to the `callrate` subcommands."""
    keys = commands.add_parser(
        "keys",
        help="API keys stored in the database (hashed)",
        description="Keys stored in the database; used when CALLRATE_API_KEYS is unset. A "
        "created key works at once, a revoked one stops working within "
        f"{STORED_KEY_RECHECK_S:g} s, without restarting the service.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = keys_commands.add_parser("create", help="make a key for a role and print it once")
    create.add_argument("role", choices=ROLES, help=f"one of {', '.join(ROLES)}")
    create.set_defaults(handler=_keys_create)
    listing = keys_commands.add_parser("list", help="key ids, roles and creation times")
    listing.set_defaults(handler=_keys_list)
    revoke = keys_commands.add_parser("revoke", help="delete a stored key: it stops working")
    revoke.add_argument(
        "key", metavar="KEY", help="a key id as `keys list` shows it, or the key itself (cr_...)"
    )
    revoke.set_defaults(handler=_keys_revoke)
