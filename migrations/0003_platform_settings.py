from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_event_origin')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PlatformSetting',
            fields=[
                ('key', fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ('value', fields.JSONField(default=dict, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_by', fields.UUIDField(null=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'platform_settings', 'app': 'models', 'pk_attr': 'key'},
            bases=['Model'],
        ),
    ]
