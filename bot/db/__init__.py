"""Persistence: the tables (one naming convention, tz-aware times, an append-only audit trail), the engine, the
unit of work and its repositories, which map rows to the domain's records, and the migrations' runner.

May import: the domain, ``bot.errors``, SQLAlchemy and Alembic. Repositories never commit: the unit of work does.
"""
