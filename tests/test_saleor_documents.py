"""Every GraphQL document the Saleor adapters send is valid against Saleor's real schema
(3.23, `shared/saleor/schema.graphql`), holds exactly one operation named like its file, and uses
no deprecated field, argument, input field or enum value. New documents are picked up by the glob."""
from pathlib import Path

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse, validate
from graphql.validation import NoDeprecatedCustomRule

from tests.saleor_fake import saleor_schema

DOCUMENTS_DIR = Path(__file__).resolve().parents[1] / "app" / "adapters" / "commerce" / "saleor" / "graphql"
DOCUMENTS = sorted(DOCUMENTS_DIR.glob("**/*.graphql"))


def _ids(path: Path) -> str:
    return str(path.relative_to(DOCUMENTS_DIR))


@pytest.mark.parametrize("path", DOCUMENTS, ids=_ids)
def test_document_is_valid_against_saleor_schema(path):
    document = parse(path.read_text(encoding="utf-8"))

    errors = validate(saleor_schema(), document)

    assert [e.message for e in errors] == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=_ids)
def test_document_holds_exactly_one_operation_named_like_the_file(path):
    document = parse(path.read_text(encoding="utf-8"))

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    others = [
        d for d in document.definitions if not isinstance(d, (OperationDefinitionNode, FragmentDefinitionNode))
    ]

    assert len(operations) == 1, "Saleor validates every operation in a posted document: one per file"
    assert operations[0].name is not None and operations[0].name.value == path.stem
    assert others == []


@pytest.mark.parametrize("path", DOCUMENTS, ids=_ids)
def test_document_uses_no_deprecated_fields_or_arguments(path):
    document = parse(path.read_text(encoding="utf-8"))

    deprecated = validate(saleor_schema(), document, rules=[NoDeprecatedCustomRule])

    assert [e.message for e in deprecated] == []


def test_documents_directory_is_the_one_the_client_loads_from():
    from app.adapters.commerce.saleor import client

    assert client.DOCUMENTS_DIR.resolve() == DOCUMENTS_DIR.resolve()
