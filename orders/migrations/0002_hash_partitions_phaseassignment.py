"""Eight HASH partitions for the PhaseAssignment table, and its id sequence owned by the table."""

from django.db import migrations
from psqlextra.backend.migrations.operations import PostgresAddHashPartition

MODULUS = 8


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [
        PostgresAddHashPartition(model_name="phaseassignment", name=f"p{remainder}", modulus=MODULUS, remainder=remainder)
        for remainder in range(MODULUS)
    ] + [
        migrations.RunSQL(
            "ALTER SEQUENCE orders_phaseassignment_id_seq OWNED BY orders_phaseassignment.id",
            reverse_sql="ALTER SEQUENCE orders_phaseassignment_id_seq OWNED BY NONE",
        ),
    ]
