"""The GraphQL documents the Saleor adapters send.

Each operation file holds exactly one operation named like the file, and each fragment file one
fragment named like the file; the client sends an operation with exactly the fragments it uses.
Every document as sent is valid against our fake's schema (always) and against Saleor's real schema
(3.23, from SALEOR_SCHEMA_PATH; skipped when that file is absent), with no deprecated field,
argument, input field or enum value. Our fake's schema is checked against Saleor's too: everything
it declares exists there with the same type, and it leaves out nothing Saleor requires.
New documents are picked up by the globs."""
from pathlib import Path

import pytest
from graphql import (
    FragmentDefinitionNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLUnionType,
    OperationDefinitionNode,
    parse,
    print_ast,
    validate,
)
from graphql.pyutils import Undefined
from graphql.validation import NoDeprecatedCustomRule

from app.adapters.commerce.saleor import client
from tests.saleor_fake import fake_schema, saleor_schema

DOCUMENTS_DIR = Path(__file__).resolve().parents[1] / "app" / "adapters" / "commerce" / "saleor" / "graphql"
FRAGMENTS_DIR = DOCUMENTS_DIR / "fragments"
OPERATIONS = sorted(DOCUMENTS_DIR.glob("*.graphql"))
FRAGMENTS = sorted(FRAGMENTS_DIR.glob("*.graphql"))


def _ids(path: Path) -> str:
    return str(path.relative_to(DOCUMENTS_DIR))


def _sent(path: Path):
    """The document the client sends for this operation file: the operation plus its fragments."""
    return parse(client.document_source(path.stem))


def test_there_are_documents_and_fragments():
    assert len(OPERATIONS) >= 30
    assert {p.stem for p in FRAGMENTS} >= {"Money", "ProductCard", "CheckoutState", "PlacedOrder"}
    assert sorted(DOCUMENTS_DIR.glob("**/*.graphql")) == sorted(OPERATIONS + FRAGMENTS)


@pytest.mark.parametrize("path", OPERATIONS, ids=_ids)
def test_operation_file_holds_exactly_one_operation_named_like_the_file_and_no_fragment(path):
    document = parse(path.read_text(encoding="utf-8"))

    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]

    assert len(operations) == 1, "Saleor validates every operation in a posted document: one per file"
    assert operations[0].name is not None and operations[0].name.value == path.stem
    assert len(document.definitions) == 1, "fragments live in graphql/fragments/, one per file"


@pytest.mark.parametrize("path", FRAGMENTS, ids=_ids)
def test_fragment_file_holds_exactly_one_fragment_named_like_the_file(path):
    document = parse(path.read_text(encoding="utf-8"))

    assert len(document.definitions) == 1
    fragment = document.definitions[0]
    assert isinstance(fragment, FragmentDefinitionNode) and fragment.name.value == path.stem


def test_every_fragment_is_sent_with_some_operation():
    users = {path.stem: [] for path in FRAGMENTS}
    for path in OPERATIONS:
        for definition in _sent(path).definitions:
            if isinstance(definition, FragmentDefinitionNode):
                users[definition.name.value].append(path.stem)

    assert [name for name, ops in users.items() if not ops] == []
    assert len(users["Money"]) >= 3 and len(users["CheckoutState"]) >= 5


def test_an_operation_is_sent_with_exactly_the_fragments_it_uses_directly_or_through_others():
    product_list = _sent(DOCUMENTS_DIR / "ProductList.graphql")
    sync_channel = _sent(DOCUMENTS_DIR / "SyncChannel.graphql")
    checkout = _sent(DOCUMENTS_DIR / "Checkout.graphql")

    def names(document):
        return [d.name.value for d in document.definitions]

    assert names(product_list) == ["ProductList", "ProductCard", "Money"]
    assert names(sync_channel) == ["SyncChannel"]
    assert names(checkout) == ["Checkout", "CheckoutState"]


def test_an_operation_that_names_an_unknown_fragment_is_refused(tmp_path, monkeypatch):
    (tmp_path / "fragments").mkdir()
    (tmp_path / "Broken.graphql").write_text("query Broken { channel(slug: \"x\") { ...Nowhere } }\n")
    monkeypatch.setattr(client, "DOCUMENTS_DIR", tmp_path)
    monkeypatch.setattr(client, "FRAGMENTS_DIR", tmp_path / "fragments")
    client.document_source.cache_clear()
    client.fragment_sources.cache_clear()
    try:
        with pytest.raises(LookupError, match="Broken uses fragment Nowhere"):
            client.document_source("Broken")
    finally:
        client.document_source.cache_clear()
        client.fragment_sources.cache_clear()


@pytest.mark.parametrize("path", OPERATIONS, ids=_ids)
def test_sent_document_is_valid_against_the_fake_saleor_schema(path):
    errors = validate(fake_schema(), _sent(path))

    assert [e.message for e in errors] == []


@pytest.mark.parametrize("path", OPERATIONS, ids=_ids)
def test_sent_document_is_valid_against_saleor_schema(path):
    errors = validate(saleor_schema(), _sent(path))

    assert [e.message for e in errors] == []


@pytest.mark.parametrize("path", OPERATIONS, ids=_ids)
def test_sent_document_uses_no_deprecated_fields_or_arguments(path):
    deprecated = validate(saleor_schema(), _sent(path), rules=[NoDeprecatedCustomRule])

    assert [e.message for e in deprecated] == []


def _required(items) -> set[str]:
    """Names of the non-null arguments or input fields without a default."""
    return {name for name, item in items.items()
            if isinstance(item.type, GraphQLNonNull) and item.default_value is Undefined}


def _default(item) -> str | None:
    """The default as written in the SDL (graphql-core keeps it on the AST node)."""
    node = item.ast_node
    return print_ast(node.default_value) if node is not None and node.default_value is not None else None


def _disagreements(ours, saleor) -> list[str]:
    """What our schema declares that Saleor's does not (or types differently), and what Saleor
    requires that ours leaves out."""
    problems = []
    for name, our_type in ours.type_map.items():
        if name.startswith("__"):
            continue
        their_type = saleor.type_map.get(name)
        if their_type is None:
            problems.append(f"{name}: not in Saleor's schema")
            continue
        if type(our_type) is not type(their_type):
            problems.append(f"{name}: a {type(our_type).__name__} here, a {type(their_type).__name__} in Saleor")
            continue
        if isinstance(our_type, GraphQLEnumType):
            problems += [f"{name}.{v}: no such enum value" for v in set(our_type.values) - set(their_type.values)]
        elif isinstance(our_type, GraphQLInputObjectType):
            for field_name, field in our_type.fields.items():
                theirs = their_type.fields.get(field_name)
                if theirs is None or str(theirs.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {field.type} here, {theirs and theirs.type} in Saleor")
                elif _default(theirs) != _default(field):
                    problems.append(f"{name}.{field_name}: default {_default(field)} here, {_default(theirs)} in Saleor")
            problems += [f"{name}.{f}: Saleor fills in a default, missing here"
                         for f, theirs in their_type.fields.items()
                         if f not in our_type.fields and _default(theirs) is not None]
            problems += [f"{name}.{f}: required by Saleor, missing here"
                         for f in _required(their_type.fields) - set(our_type.fields)]
        elif isinstance(our_type, (GraphQLObjectType, GraphQLInterfaceType)):
            their_interfaces = {i.name for i in their_type.interfaces}
            problems += [f"{name}: does not implement {i.name} in Saleor"
                         for i in our_type.interfaces if i.name not in their_interfaces]
            for field_name, field in our_type.fields.items():
                theirs = their_type.fields.get(field_name)
                if theirs is None or str(theirs.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {field.type} here, {theirs and theirs.type} in Saleor")
                    continue
                for arg_name, arg in field.args.items():
                    their_arg = theirs.args.get(arg_name)
                    if their_arg is None or str(their_arg.type) != str(arg.type):
                        problems.append(f"{name}.{field_name}({arg_name}:): {arg.type} here, "
                                        f"{their_arg and their_arg.type} in Saleor")
                    elif _default(their_arg) != _default(arg):
                        problems.append(f"{name}.{field_name}({arg_name}:): default {_default(arg)} here, "
                                        f"{_default(their_arg)} in Saleor")
                problems += [f"{name}.{field_name}({a}:): required by Saleor, missing here"
                             for a in _required(theirs.args) - set(field.args)]
        elif isinstance(our_type, GraphQLUnionType):
            problems += [f"{name}: {t.name} is not a member in Saleor"
                         for t in our_type.types if t.name not in {m.name for m in their_type.types}]
        else:
            assert isinstance(our_type, GraphQLScalarType)
    return problems


def test_the_fake_saleor_schema_agrees_with_saleors_schema():
    assert _disagreements(fake_schema(), saleor_schema()) == []


def test_the_agreement_check_finds_a_field_typed_unlike_saleor():
    from graphql import build_schema

    ours = build_schema("type Query { channel(slug: String!): Channel }  type Channel { id: ID slug: String! }")
    saleor = build_schema("type Query { channel(id: ID, slug: String): Channel }  type Channel { id: ID! slug: String! }"
                          "  input MetadataInput { key: String! value: String! }")

    assert _disagreements(ours, saleor) == [
        "Query.channel(slug:): String! here, String in Saleor",
        "Channel.id: ID here, ID! in Saleor",
    ]


def test_the_fake_schema_offers_every_billing_country_the_checkout_form_offers():
    from app.storefront.cart import BILLING_COUNTRIES

    assert {code for code, _ in BILLING_COUNTRIES} <= set(fake_schema().type_map["CountryCode"].values)


def test_the_fake_schema_offers_every_sort_order_the_catalog_adapter_asks_for():
    from app.adapters.commerce.saleor.catalog import SORT_FIELDS

    fields = {field for field, _ in SORT_FIELDS.values()} | {"RANK", "CREATED_AT"}

    assert fields <= set(fake_schema().type_map["ProductOrderField"].values)


def test_documents_directory_is_the_one_the_client_loads_from():
    assert client.DOCUMENTS_DIR.resolve() == DOCUMENTS_DIR.resolve()
    assert client.FRAGMENTS_DIR.resolve() == FRAGMENTS_DIR.resolve()
