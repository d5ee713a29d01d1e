from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_platform_settings')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Pipeline',
            index=Index(fields=['created_at', 'id']),
        ),
    ]
