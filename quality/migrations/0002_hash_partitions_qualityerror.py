"""Eight HASH partitions for the QualityError table, and its id sequence owned by the table."""

from django.db import migrations
from psqlextra.backend.migrations.operations import PostgresAddHashPartition

MODULUS = 8


class Migration(migrations.Migration):
    dependencies = [("quality", "0001_initial")]

    operations = [
        PostgresAddHashPartition(model_name="qualityerror", name=f"p{remainder}", modulus=MODULUS, remainder=remainder)
        for remainder in range(MODULUS)
    ] + [
        migrations.RunSQL(
            "ALTER SEQUENCE quality_qualityerror_id_seq OWNED BY quality_qualityerror.id",
            reverse_sql="ALTER SEQUENCE quality_qualityerror_id_seq OWNED BY NONE",
        ),
    ]
