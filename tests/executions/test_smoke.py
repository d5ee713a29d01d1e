import pytest

from tests.executions.helpers import (
    create_connector, create_pipeline, sales_canvas, start_run, wait_for_status, write_sales_csv,
)

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_run_to_dataset(server, client, editor):
    write_sales_csv(server.data_dir / "smoke_in")
    source = await create_connector(client, editor, "file", {"path": "smoke_in"})
    pipeline = await create_pipeline(client, editor, sales_canvas(source, "smoke_ds"))
    assert pipeline["execution_graph"]["nodes"]
    execution_id = await start_run(client, editor, pipeline["id"])
    body = await wait_for_status(client, editor, execution_id)
    assert body["status"] == "succeeded", body
    print(body)
