"""PostgreSQL databases sold on the Vercel Marketplace through marketplace-provider.

Point the kit at the two plug-ins:

    PROVISIONER=example_postgres:PostgresProvisioner
    USAGE_SOURCE=example_postgres:DatabaseSizeUsage

Both read `EXAMPLE_POSTGRES_*` (settings.py) when the kit creates them, and are async context managers: the kit
enters them at start-up (opening an admin connection pool) and exits them at shutdown. `example-postgres`
(ops.py) rotates a password or finishes a provisioning from the provider's side.
"""

from example_postgres.provisioner import PostgresProvisioner
from example_postgres.settings import PostgresSettings
from example_postgres.usage import DatabaseSizeUsage

__all__ = ["DatabaseSizeUsage", "PostgresProvisioner", "PostgresSettings"]
