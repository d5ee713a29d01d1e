"""Tortoise models: the platform's whole persistent schema.

UUID keys, JSON(B) columns, timezone-aware timestamps. Indexes exist where lists sort or
filter. Every table works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import uuid4

from tortoise import fields
from tortoise.indexes import Index
from tortoise.models import Model


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _ROLE_RANK[self]

    def includes(self, other: Role) -> bool:
        return self.rank >= other.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.EDITOR: 1, Role.ADMIN: 2}


class TimestampedModel(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        abstract = True


class User(TimestampedModel):
    email = fields.CharField(max_length=320, unique=True)
    password_hash = fields.CharField(max_length=255)
    full_name = fields.CharField(max_length=200, default="")
    role = fields.CharEnumField(Role, max_length=16, default=Role.VIEWER)
    is_active = fields.BooleanField(default=True)
    last_login_at = fields.DatetimeField(null=True)
    # Bumped on logout / deactivation so that outstanding access tokens stop working.
    token_generation = fields.IntField(default=0)

    class Meta:
        table = "users"


class RefreshTokenFamily(Model):
    # One login session. Each refresh rotates `current_jti`. Presenting an older jti of the
    # same family means the token was stolen and replayed, so the whole family is revoked.

    id = fields.UUIDField(primary_key=True, default=uuid4)
    user = fields.ForeignKeyField(
        "models.User", related_name="token_families", on_delete=fields.CASCADE
    )
    current_jti = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    rotated_at = fields.DatetimeField(null=True)
    expires_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=32, null=True)

    class Meta:
        table = "refresh_token_families"


class Pipeline(TimestampedModel):
    owner = fields.ForeignKeyField(
        "models.User", related_name="pipelines", null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200, db_index=True)
    description = fields.TextField(default="")
    visual_definition = fields.JSONField(default=dict)
    execution_graph = fields.JSONField(default=dict)
    version = fields.IntField(default=1)
    schedule = fields.CharField(max_length=120, null=True)
    status = fields.CharField(max_length=16, default="active", db_index=True)
    schema_policy = fields.CharField(max_length=16, default="evolve")
    concurrency = fields.IntField(default=1)

    class Meta:
        table = "pipelines"
        # The list's default order (newest first, id breaks ties) read straight off an index.
        indexes = [Index(fields=("created_at", "id"))]


class PipelineVersion(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    pipeline = fields.ForeignKeyField(
        "models.Pipeline", related_name="versions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    visual_definition = fields.JSONField(default=dict)
    execution_graph = fields.JSONField(default=dict)
    schedule = fields.CharField(max_length=120, null=True)
    created_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "pipeline_versions"
        unique_together = (("pipeline", "version"),)


class PipelineExecution(TimestampedModel):
    pipeline = fields.ForeignKeyField(
        "models.Pipeline", related_name="executions", on_delete=fields.CASCADE
    )
    version = fields.IntField()
    status = fields.CharField(max_length=16, default="queued", db_index=True)
    trigger = fields.CharField(max_length=16, default="manual")
    parameters = fields.JSONField(default=dict)
    progress = fields.FloatField(default=0.0)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    error = fields.JSONField(null=True)
    result = fields.JSONField(null=True)
    created_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    retry_of = fields.ForeignKeyField(
        "models.PipelineExecution", related_name="retries", null=True, on_delete=fields.SET_NULL
    )
    correlation_id = fields.CharField(max_length=64, null=True)
    # Which process runs it; a dead owner's running executions become `crashed` at start-up.
    owner_token = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "pipeline_executions"
        indexes = [Index(fields=("pipeline_id", "created_at"))]


class ExecutionStep(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    execution = fields.ForeignKeyField(
        "models.PipelineExecution", related_name="steps", on_delete=fields.CASCADE
    )
    node_id = fields.CharField(max_length=100)
    node_type = fields.CharField(max_length=64, default="")
    position = fields.IntField(default=0)
    status = fields.CharField(max_length=16, default="pending")
    rows_in = fields.BigIntField(default=0)
    rows_out = fields.BigIntField(default=0)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)
    error = fields.JSONField(null=True)

    class Meta:
        table = "execution_steps"
        unique_together = (("execution", "node_id"),)


class ExecutionLog(Model):
    id = fields.BigIntField(primary_key=True)
    execution = fields.ForeignKeyField(
        "models.PipelineExecution", related_name="logs", on_delete=fields.CASCADE
    )
    ts = fields.DatetimeField(auto_now_add=True)
    level = fields.CharField(max_length=10, default="INFO")
    message = fields.TextField()
    node_id = fields.CharField(max_length=100, null=True)
    data = fields.JSONField(null=True)

    class Meta:
        table = "execution_logs"
        indexes = [Index(fields=("execution_id", "id"))]


class Connector(TimestampedModel):
    owner = fields.ForeignKeyField(
        "models.User", related_name="connectors", null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200, db_index=True)
    type = fields.CharField(max_length=64, db_index=True)
    # Secret values inside are encrypted (see app/security/secrets.py), never stored plain.
    config = fields.JSONField(default=dict)
    description = fields.TextField(default="")
    state = fields.JSONField(default=dict)  # incremental read state per stream

    class Meta:
        table = "connectors"


class ConfigurationTemplate(TimestampedModel):
    owner = fields.ForeignKeyField("models.User", related_name=False, on_delete=fields.CASCADE)
    name = fields.CharField(max_length=200)
    type = fields.CharField(max_length=64, db_index=True)
    description = fields.TextField(default="")
    config = fields.JSONField(default=dict)

    class Meta:
        table = "configuration_templates"


class SchemaSnapshot(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    connector = fields.ForeignKeyField(
        "models.Connector", related_name="schema_snapshots", on_delete=fields.CASCADE
    )
    fingerprint = fields.CharField(max_length=64)
    streams = fields.JSONField(default=list)
    diff = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "schema_snapshots"
        indexes = [Index(fields=("connector_id", "created_at"))]


class Mapping(TimestampedModel):
    owner = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    source_schema = fields.JSONField(default=list)
    target_schema = fields.JSONField(default=list)
    rules = fields.JSONField(default=list)

    class Meta:
        table = "mappings"


class Transformation(TimestampedModel):
    # A reusable, named node configuration for the builder's palette.

    owner = fields.ForeignKeyField(
        "models.User", related_name="transformations", null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200, db_index=True)
    description = fields.TextField(default="")
    node_type = fields.CharField(max_length=64)
    config = fields.JSONField(default=dict)

    class Meta:
        table = "transformations"


class PipelineTemplate(TimestampedModel):
    owner = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    name = fields.CharField(max_length=200)
    description = fields.TextField(default="")
    parameters = fields.JSONField(default=dict)  # JSON Schema of the template's parameters
    visual_definition = fields.JSONField(default=dict)
    builtin = fields.BooleanField(default=False)

    class Meta:
        table = "pipeline_templates"


class ScheduledRun(Model):
    # A cron tick claimed by exactly one process: the unique key makes the claim atomic.

    id = fields.UUIDField(primary_key=True, default=uuid4)
    pipeline = fields.ForeignKeyField(
        "models.Pipeline", related_name=False, on_delete=fields.CASCADE
    )
    scheduled_for = fields.DatetimeField()
    execution_id = fields.UUIDField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "scheduled_runs"
        unique_together = (("pipeline", "scheduled_for"),)


class Event(Model):
    # The audit trail and the replay log behind WebSocket resume (outbox pattern).

    id = fields.UUIDField(primary_key=True, default=uuid4)
    topic = fields.CharField(max_length=120)
    seq = fields.BigIntField()
    type = fields.CharField(max_length=64, db_index=True)
    entity_type = fields.CharField(max_length=32)
    entity_id = fields.CharField(max_length=64)
    data = fields.JSONField(default=dict)
    user_id = fields.UUIDField(null=True, db_index=True)
    correlation_id = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    published_at = fields.DatetimeField(null=True)
    # Set on the copies of an event stored under its further topics (the audit trail lists
    # only originals, where this is null). Holds the original row id.
    origin_id = fields.UUIDField(null=True)

    class Meta:
        table = "events"
        unique_together = (("topic", "seq"),)
        indexes = [Index(fields=("entity_type", "entity_id")), Index(fields=("published_at",))]


class TopicSequence(Model):
    # The last sequence number handed out per topic (rows locked while allocating).

    topic = fields.CharField(max_length=120, primary_key=True)
    last_seq = fields.BigIntField(default=0)

    class Meta:
        table = "topic_sequences"


class Notification(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    user = fields.ForeignKeyField(
        "models.User", related_name="notifications", on_delete=fields.CASCADE
    )
    type = fields.CharField(max_length=64)
    title = fields.CharField(max_length=300)
    body = fields.TextField(default="")
    data = fields.JSONField(default=dict)
    event_id = fields.UUIDField(null=True)
    read_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notifications"
        indexes = [Index(fields=("user_id", "read_at")), Index(fields=("user_id", "created_at"))]


class NotificationPreference(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    user = fields.ForeignKeyField(
        "models.User", related_name="notification_preferences", on_delete=fields.CASCADE
    )
    event_type = fields.CharField(max_length=64)
    channel = fields.CharField(max_length=16)  # websocket | email
    enabled = fields.BooleanField(default=True)

    class Meta:
        table = "notification_preferences"
        unique_together = (("user", "event_type", "channel"),)


class WebSocketConnection(Model):
    id = fields.UUIDField(primary_key=True, default=uuid4)
    user = fields.ForeignKeyField("models.User", related_name=False, on_delete=fields.CASCADE)
    process_token = fields.CharField(max_length=64, db_index=True)
    topics = fields.JSONField(default=list)
    remote_addr = fields.CharField(max_length=64, default="")
    connected_at = fields.DatetimeField(auto_now_add=True)
    last_ping = fields.DatetimeField(null=True)

    class Meta:
        table = "websocket_connections"


class Job(TimestampedModel):
    kind = fields.CharField(max_length=64, db_index=True)
    status = fields.CharField(max_length=16, default="queued", db_index=True)
    progress = fields.FloatField(default=0.0)
    payload = fields.JSONField(default=dict)
    result = fields.JSONField(null=True)
    error = fields.JSONField(null=True)
    attempts = fields.IntField(default=0)
    created_by = fields.ForeignKeyField(
        "models.User", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    correlation_id = fields.CharField(max_length=64, null=True)
    started_at = fields.DatetimeField(null=True)
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "jobs"


class Dataset(TimestampedModel):
    # Catalog row for a managed dataset; its versions live as Parquet under DATA_DIR.

    name = fields.CharField(max_length=200, unique=True)
    description = fields.TextField(default="")
    pipeline = fields.ForeignKeyField(
        "models.Pipeline", related_name=False, null=True, on_delete=fields.SET_NULL
    )
    current_version = fields.IntField(default=0)

    class Meta:
        table = "datasets"


class PlatformSetting(Model):
    # Settings an admin changes at run time (e.g. the connector network policy), by key.

    key = fields.CharField(max_length=64, primary_key=True)
    value = fields.JSONField(default=dict)
    updated_by = fields.UUIDField(null=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "platform_settings"
