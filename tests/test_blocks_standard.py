"""The blocks as a Prefect collection: Prefect's own block standards over every block the
package registers, the entry point and `prefect block register`, the documentation links, the
code examples run as written, the shared Odoo login and the one resolver."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from abc import ABC
from importlib.metadata import entry_points
from pathlib import Path
from urllib.error import URLError

import prefect
import pytest
from prefect.blocks.core import Block
from prefect.testing.standard_test_suites import BlockStandardTestSuite
from prefect.utilities.dispatch import get_registry_for_type
from prefect.utilities.slugify import slugify

import blocks
from blocks.catalog import DOCS_URL

ROOT = Path(__file__).resolve().parent.parent


def _collection_module():
    """The module the package's `prefect.collections` entry point names."""
    (entry,) = [e for e in entry_points(group="prefect.collections") if e.name == "prefect_dunning"]
    return entry.load()


def _registered(module) -> list[type[Block]]:
    """The block classes `prefect block register -m <module>` registers: the module's Block
    classes that are not interfaces (Prefect skips a class with ABC among its bases)."""
    return [
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if Block.is_block_class(cls) and cls is not Block and ABC not in cls.__bases__
    ]


def _defined_in_blocks() -> set[type[Block]]:
    """Every concrete block class defined anywhere in the `blocks` package."""
    found = set()
    for info in pkgutil.iter_modules(blocks.__path__, "blocks."):
        module = importlib.import_module(info.name)
        found |= {cls for cls in _registered(module) if cls.__module__ == info.name}
    return found


BLOCKS = sorted(_registered(_collection_module()), key=lambda cls: cls.__name__)


def _prefect_logos() -> set[str]:
    """Logo URLs Prefect itself uses: its own blocks and process worker, and the
    integrations in the catalog it ships."""
    from prefect.workers.process import ProcessWorker

    catalog = Path(prefect.__file__).parent / "server" / "collection_blocks_data.json"
    logos = set(re.findall(r'"logo_url": "([^"]+)"', catalog.read_text()))
    logos.add(str(ProcessWorker._logo_url))
    for cls in get_registry_for_type(Block).values():
        if cls.__module__.startswith(("prefect.", "prefect_email")) and cls._logo_url:
            logos.add(str(cls._logo_url))
    return logos


class TestPrefectBlockStandards(BlockStandardTestSuite):
    """`BlockStandardTestSuite`, the suite prefect-email and prefect-aws run, per block."""

    @pytest.fixture(params=BLOCKS, ids=lambda cls: cls.__name__)
    def block(self, request) -> type[Block]:
        return request.param

    def test_has_a_valid_image(self, block: type[Block]) -> None:
        """Prefect's check downloads the logo. Without a network (the CI machine has none)
        the logo must be one Prefect publishes for its own blocks, which Prefect's suite
        checks with the same test."""
        try:
            super().test_has_a_valid_image(block)
        except URLError:
            assert str(block._logo_url) in _prefect_logos(), block._logo_url


def test_the_entry_point_module_registers_every_block_of_the_package():
    assert set(BLOCKS) == _defined_in_blocks()
    assert len(BLOCKS) == 21  # 19 + the document library + the knowledge base
    registry = get_registry_for_type(Block)
    for cls in BLOCKS:
        assert cls.get_block_type_slug() in {c.get_block_type_slug() for c in registry.values()}
        assert cls._block_type_name and cls._description and cls.__doc__


def test_prefect_block_register_lists_every_block(prefect_api):
    env = os.environ | {"PREFECT_API_URL": prefect_api, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "prefect", "block", "register", "-m", "blocks"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"Successfully registered {len(BLOCKS)} blocks" in done.stdout
    listed = {line.strip("│ ") for line in done.stdout.splitlines() if line.startswith("│")}
    assert listed == {cls.get_block_type_name() for cls in BLOCKS}


def test_every_documentation_url_is_a_section_of_docs_blocks_md():
    headings = re.findall(r"^## (.+)$", (ROOT / "docs" / "blocks.md").read_text(), re.M)
    anchors = {slugify(h) for h in headings}
    for cls in BLOCKS:
        url = str(cls._documentation_url)
        page, _, anchor = url.partition("#")
        assert page == DOCS_URL and anchor in anchors, (cls.__name__, url)
        assert cls.get_block_type_name() in headings


def _code(block: type[Block]) -> list[str]:
    return re.findall(r"```python\n(.*?)```", block.get_code_example() or "", re.S)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda cls: cls.__name__)
def test_the_code_examples_run_as_written(prefect_api, block, capsys):
    """Each docstring's examples, in order: save the block, then load it by name (Prefect's
    `BLOCK_NAME` placeholder filled in with a name a block may have)."""
    examples = _code(block)
    assert len(examples) >= 2 and "save(" in examples[0] and ".load(" in examples[-1]
    namespace: dict = {}
    for code in examples:
        code = code.replace('"BLOCK_NAME"', '"docs-example"')
        exec(compile(code, f"<{block.__name__} example>", "exec"), namespace)  # noqa: S102
    loaded = [v for v in namespace.values() if isinstance(v, block)]
    assert loaded and loaded[-1]._block_document_name == "docs-example"
    printed = capsys.readouterr().out
    for secret in ("whsec_", "EAAG", "3c1f", "rk_live", "pat-eu1", "9f2c"):
        assert secret not in printed


def test_the_odoo_source_and_crm_share_one_saved_login(prefect_api):
    from blocks import OdooCredentials, OdooCrm, OdooInvoiceSource

    OdooCredentials(url="https://acme.odoo.example", database="acme", api_key="k-1").save(
        "odoo-login-shared", overwrite=True
    )
    login = OdooCredentials.load("odoo-login-shared")
    OdooInvoiceSource(credentials=login).save("odoo-source-shared", overwrite=True)
    OdooCrm(credentials=login, manager_user_id=6).save("odoo-crm-shared", overwrite=True)
    # The key changes once, in the login block; both load the new one.
    OdooCredentials(url="https://acme.odoo.example", database="acme", api_key="k-2").save(
        "odoo-login-shared", overwrite=True
    )
    source = OdooInvoiceSource.load("odoo-source-shared")
    crm = OdooCrm.load("odoo-crm-shared")
    assert source.credentials.api_key.get_secret_value() == "k-2"
    assert crm.credentials.api_key.get_secret_value() == "k-2"
    assert source.api_root == crm.api_root == "https://acme.odoo.example"


def test_an_odoo_source_saved_with_its_login_inline_still_loads(prefect_api):
    """Blocks saved before OdooCredentials existed hold url, api_key, ... at the top."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import BlockDocumentCreate

    from blocks import OdooInvoiceSource

    OdooInvoiceSource.register_type_and_schema()
    flat = {"url": "https://old.odoo.example", "database": "old", "api_key": "k-old"}
    with get_client(sync_client=True) as client:
        client.create_block_document(
            BlockDocumentCreate(
                name="odoo-saved-flat",
                data=flat | {"page_size": 50},
                block_schema_id=OdooInvoiceSource._block_schema_id,
                block_type_id=OdooInvoiceSource._block_type_id,
            )
        )
    source = OdooInvoiceSource.load("odoo-saved-flat")
    assert source.credentials.database == "old" and source.page_size == 50
    assert source.api_key.get_secret_value() == "k-old"


def test_an_odoo_login_given_inline_is_the_same_block():
    from blocks import OdooCredentials, OdooCrm, OdooInvoiceSource

    inline = OdooInvoiceSource(url="https://o.example", database="d", api_key="k", page_size=9)
    nested = OdooInvoiceSource(
        credentials=OdooCredentials(url="https://o.example", database="d", api_key="k"),
        page_size=9,
    )
    assert inline.model_dump() == nested.model_dump() and inline.url == "https://o.example"
    crm = OdooCrm(url="https://o.example", api_key="k", protocol="jsonrpc", login="bot")
    assert crm.credentials.protocol == "jsonrpc" and crm.credentials.login == "bot"
    assert crm.credentials.api_key.get_secret_value() == "k"
    assert "SecretStr('**********')" in repr(crm)


def test_http_blocks_share_one_base_and_keep_their_rate_limit_names():
    from blocks import HttpApiBlock, HubSpotCrm, OdooCrm, RestInvoiceSource, StripeInvoiceSource

    http_blocks = [cls for cls in BLOCKS if issubclass(cls, HttpApiBlock)]
    assert {c.__name__ for c in http_blocks} == {
        "HoldedInvoiceSource",
        "HubSpotCrm",
        "OdooCrm",
        "OdooInvoiceSource",
        "RestInvoiceSource",
        "StripeInvoiceSource",
    }
    rest = RestInvoiceSource(url="https://erp.acme.example/api/invoices")
    assert rest.rate_limit_name() == "dunning-source-rest-invoice-source-erp.acme.example"
    assert StripeInvoiceSource(secret_key="sk", requests_per_second=0).rate_limit_name() is None
    hubspot = HubSpotCrm(access_token="pat")
    assert hubspot.rate_limit_name() == "dunning-crm-hubspot-crm-api.hubapi.com"
    odoo = OdooCrm(url="https://o.example", api_key="k")
    assert odoo.rate_limit_name() == "dunning-crm-odoo-crm-o.example"
    client = odoo.http({}, "check api_key")
    assert client.name == "Odoo CRM 'unsaved'" and client.retry.retries == odoo.retries


# -- the one resolver -----------------------------------------------------------------------


def test_resolve_block_takes_an_instance_or_builds_the_default():
    from blocks import CRM_TYPES, DunningPolicy, LedgerCrm, LedgerDatabase, resolve_block

    ledger = LedgerDatabase(url="sqlite:///x.db")
    assert resolve_block(ledger, LedgerDatabase) is ledger
    assert isinstance(resolve_block(None, CRM_TYPES, default=LedgerCrm), LedgerCrm)
    assert resolve_block("", DunningPolicy, default=DunningPolicy.default).stages
    with pytest.raises(TypeError, match="LedgerDatabase"):
        resolve_block(None, LedgerDatabase)
    with pytest.raises(TypeError, match="LedgerDatabase"):
        resolve_block(LedgerCrm(), LedgerDatabase)


def test_resolve_block_finds_saved_blocks_by_name_and_slug(prefect_api):
    from blocks import (
        SOURCE_TYPES,
        CsvInvoiceSource,
        LedgerDatabase,
        StripeInvoiceSource,
        resolve_block,
    )

    StripeInvoiceSource(secret_key="sk_test_1").save("resolver-stripe", overwrite=True)
    CsvInvoiceSource(path="a.csv").save("resolver-both", overwrite=True)
    StripeInvoiceSource(secret_key="sk_test_2").save("resolver-both", overwrite=True)
    LedgerDatabase(url="sqlite:///r.db").save("resolver-ledger", overwrite=True)

    assert isinstance(resolve_block("resolver-stripe", SOURCE_TYPES), StripeInvoiceSource)
    # A bare name is looked up in the tuple's order (the CSV source first); a slug is exact.
    assert isinstance(resolve_block("resolver-both", SOURCE_TYPES), CsvInvoiceSource)
    by_slug = resolve_block("stripe-invoice-source/resolver-both", SOURCE_TYPES)
    assert by_slug.secret_key.get_secret_value() == "sk_test_2"
    assert resolve_block("resolver-ledger", LedgerDatabase).url == "sqlite:///r.db"
    with pytest.raises(TypeError, match="not a"):
        resolve_block("ledger-database/resolver-ledger", SOURCE_TYPES)
    with pytest.raises(ValueError, match="stripe-invoice-source/absent"):
        resolve_block("absent", SOURCE_TYPES)
    with pytest.raises(ValueError):
        resolve_block("absent", LedgerDatabase)
    # The command line's --ledger-block goes through the same resolver.
    from apps.cli.desk import _ledger_url

    assert _ledger_url(None, "resolver-ledger").endswith("r.db")
