"""An in-memory Saleor catalog behind the fake Saleor server (tests/saleor_fake.py): resolvers for the
queries and mutations the product sync sends, keeping state between requests like a real Saleor.

It enforces the Saleor rules the sync depends on: unique slugs and SKUs, choice values that
belong to their attribute, a category and product type that exist, and a variant price only for a
product already listed in that channel (Saleor's "product not available in channel").
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

APP_TOKEN = "saleor-app-token-for-tests"  # the token the Saleor-backed test app sends (the saleor_app fixture)


def _slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _error(field_name: str, code: str, message: str) -> dict[str, Any]:
    return {"field": field_name, "code": code, "message": message}


@dataclass
class SaleorStore:
    channel_slug: str = "default-channel"
    currency: str = "USD"
    warehouses: list[str] = field(default_factory=lambda: ["V2FyZWhvdXNlOjE="])
    attributes: dict[str, dict] = field(default_factory=dict)  # id -> attribute
    product_types: dict[str, dict] = field(default_factory=dict)
    categories: dict[str, dict] = field(default_factory=dict)
    products: dict[str, dict] = field(default_factory=dict)
    variants: dict[str, dict] = field(default_factory=dict)
    collections: dict[str, dict] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def channel_id(self) -> str:
        return "Q2hhbm5lbDox"

    def _id(self, kind: str) -> str:
        return f"{kind}:{next(self._ids)}"

    def install(self, fake) -> None:
        fake.resolvers.update({
            "channel": self.channel, "attributes": self.list_attributes, "attributeCreate": self.attribute_create,
            "attributeValueCreate": self.attribute_value_create, "productTypes": self.list_product_types,
            "productTypeCreate": self.product_type_create, "productAttributeAssign": self.product_attribute_assign,
            "category": self.category, "categoryCreate": self.category_create, "product": self.product,
            "productCreate": self.product_create, "productUpdate": self.product_update,
            "productVariant": self.product_variant, "productVariantCreate": self.variant_create,
            "productVariantUpdate": self.variant_update,
            "productChannelListingUpdate": self.product_channel_listing_update,
            "productVariantChannelListingUpdate": self.variant_channel_listing_update,
            "collection": self.collection, "collectionCreate": self.collection_create,
            "collectionAddProducts": self.collection_add_products,
            "collectionRemoveProducts": self.collection_remove_products,
            "collectionChannelListingUpdate": self.collection_channel_listing_update,
        })

    # --- read helpers for assertions -----------------------------------------------------------
    def attribute_by_slug(self, slug: str) -> dict | None:
        return next((a for a in self.attributes.values() if a["slug"] == slug), None)

    def product_by_slug(self, slug: str) -> dict | None:
        return next((p for p in self.products.values() if p["slug"] == slug), None)

    def collection_by_slug(self, slug: str) -> dict | None:
        return next((c for c in self.collections.values() if c["slug"] == slug), None)

    def collection_slugs(self, product: dict) -> list[str]:
        return sorted(c["slug"] for c in self.collections.values() if product["id"] in c["products"])

    def variant_by_sku(self, sku: str) -> dict | None:
        return next((v for v in self.variants.values() if v["sku"] == sku), None)

    def value_slugs(self, product: dict, attribute_slug: str) -> list[str]:
        attribute = self.attribute_by_slug(attribute_slug)
        assigned = product["attributes"].get(attribute["id"], [])
        by_id = {v["id"]: v["slug"] for v in attribute["values"]}
        return sorted(by_id[i] for i in assigned)

    # --- queries -------------------------------------------------------------------------------
    def channel(self, info, slug=None, id=None):  # noqa: A002
        if slug != self.channel_slug:
            return None
        return {"id": self.channel_id, "slug": slug, "currencyCode": self.currency,
                "warehouses": [{"id": w} for w in self.warehouses]}

    def _attribute_node(self, attribute: dict) -> dict:
        def choices(info, first=None, where=None, **_):
            values = attribute["values"]
            if where:
                ors = where.get("OR") or [where]
                keep = []
                for value in values:
                    for clause in ors:
                        slugs = ((clause.get("slug") or {}).get("oneOf")) or []
                        names = ((clause.get("name") or {}).get("oneOf")) or []
                        if value["slug"] in slugs or value["name"] in names:
                            keep.append(value)
                            break
                values = keep
            return {"edges": [{"node": dict(v)} for v in values[: first or 100]]}

        return {"id": attribute["id"], "slug": attribute["slug"], "name": attribute["name"],
                "inputType": attribute["inputType"], "choices": choices}

    def list_attributes(self, info, first=None, where=None, **_):
        slugs = set(((where or {}).get("slug") or {}).get("oneOf") or [])
        found = [a for a in self.attributes.values() if not slugs or a["slug"] in slugs]
        return {"edges": [{"node": self._attribute_node(a)} for a in found[: first or 100]]}

    def list_product_types(self, info, first=None, filter=None, **_):  # noqa: A002
        slugs = set((filter or {}).get("slugs") or [])
        found = [t for t in self.product_types.values() if not slugs or t["slug"] in slugs]
        return {"edges": [{"node": {
            "id": t["id"], "slug": t["slug"],
            "productAttributes": [{"id": i, "slug": self.attributes[i]["slug"]} for i in t["productAttributes"]],
            "assignedVariantAttributes": [
                {"attribute": {"id": i, "slug": self.attributes[i]["slug"]}} for i in t["variantAttributes"]],
        }} for t in found[: first or 100]]}

    def category(self, info, slug=None, id=None, **_):  # noqa: A002
        return next(({"id": c["id"], "slug": c["slug"]} for c in self.categories.values() if c["slug"] == slug), None)

    def _product_node(self, product: dict | None) -> dict | None:
        if product is None:
            return None
        return {"id": product["id"], "slug": product["slug"], "productType": {"id": product["productType"]}}

    def product(self, info, id=None, slug=None, **_):  # noqa: A002
        if id is not None and slug is not None:
            raise ValueError("Argument 'id' cannot be combined with 'slug'")
        if id is not None:
            return self._product_node(self.products.get(id))
        return self._product_node(self.product_by_slug(slug))

    def product_variant(self, info, sku=None, **_):
        variant = next((v for v in self.variants.values() if v["sku"] == sku), None)
        if variant is None:
            return None
        return {"id": variant["id"], "sku": variant["sku"], "product": {"id": variant["product"]}}

    def collection(self, info, slug=None, id=None, channel=None, **_):  # noqa: A002
        found = self.collections.get(id) if id else self.collection_by_slug(slug)
        if found is None:
            return None

        def products(info, where=None, first=None, **_):
            ids = set((where or {}).get("ids") or found["products"])
            return {"edges": [{"node": {"id": p}} for p in found["products"] if p in ids][: first or 100]}

        return {"id": found["id"], "slug": found["slug"], "products": products,
                "channelListings": [{"channel": {"id": c}, "isPublished": p} for c, p in found["channels"].items()]}

    def collection_create(self, info, input):  # noqa: A002
        if self.collection_by_slug(input["slug"]):
            return {"collection": None, "errors": [_error("slug", "UNIQUE", "Collection with this Slug already exists.")]}
        collection = {"id": self._id("Collection"), "slug": input["slug"], "name": input["name"],
                      "products": list(input.get("products") or []), "channels": {}}
        self.collections[collection["id"]] = collection
        return {"collection": {"id": collection["id"], "slug": collection["slug"]}, "errors": []}

    def collection_add_products(self, info, collectionId, products):  # noqa: N803
        collection = self.collections[collectionId]
        if any(p in collection["products"] for p in products):
            return {"collection": None, "errors": [_error("products", "DUPLICATED_INPUT_ITEM", "Already in it.")]}
        collection["products"] += list(products)
        return {"collection": {"id": collectionId}, "errors": []}

    def collection_remove_products(self, info, collectionId, products):  # noqa: N803
        collection = self.collections[collectionId]
        collection["products"] = [p for p in collection["products"] if p not in products]
        return {"collection": {"id": collectionId}, "errors": []}

    def collection_channel_listing_update(self, info, id, input):  # noqa: A002
        collection = self.collections[id]
        for listing in input.get("addChannels") or []:
            collection["channels"][listing["channelId"]] = listing.get("isPublished")
        return {"collection": {"id": id}, "errors": []}

    # --- mutations -----------------------------------------------------------------------------
    def attribute_create(self, info, input):  # noqa: A002
        if self.attribute_by_slug(input["slug"]):
            return {"attribute": None, "errors": [_error("slug", "UNIQUE", "Attribute with this Slug already exists.")]}
        attribute = {"id": self._id("Attribute"), "slug": input["slug"], "name": input["name"],
                     "inputType": input["inputType"], "type": input["type"], "values": []}
        self.attributes[attribute["id"]] = attribute
        return {"attribute": self._attribute_node(attribute), "errors": []}

    def attribute_value_create(self, info, attribute, input):  # noqa: A002
        owner = self.attributes.get(attribute)
        if owner is None:
            return {"attributeValue": None, "errors": [_error("attribute", "NOT_FOUND", "No such attribute.")]}
        base = _slugify(input["name"])
        slug, n = base, 2
        while any(v["slug"] == slug for v in owner["values"]):
            slug, n = f"{base}-{n}", n + 1
        value = {"id": self._id("AttributeValue"), "slug": slug, "name": input["name"]}
        owner["values"].append(value)
        return {"attributeValue": dict(value), "errors": []}

    def product_type_create(self, info, input):  # noqa: A002
        if any(t["slug"] == input["slug"] for t in self.product_types.values()):
            return {"productType": None, "errors": [_error("slug", "UNIQUE", "Product type exists.")]}
        product_type = {"id": self._id("ProductType"), "slug": input["slug"], "name": input["name"],
                        "productAttributes": list(input.get("productAttributes") or []),
                        "variantAttributes": list(input.get("variantAttributes") or []),
                        "isShippingRequired": input.get("isShippingRequired")}
        self.product_types[product_type["id"]] = product_type
        return {"productType": {"id": product_type["id"]}, "errors": []}

    def product_attribute_assign(self, info, productTypeId, operations):  # noqa: N803
        product_type = self.product_types[productTypeId]
        for op in operations:
            key = "productAttributes" if op["type"] == "PRODUCT" else "variantAttributes"
            if op["id"] in product_type[key]:
                return {"productType": None, "errors": [_error("operations", "ATTRIBUTE_ALREADY_ASSIGNED", "x")]}
            product_type[key].append(op["id"])
        return {"productType": {"id": productTypeId}, "errors": []}

    def category_create(self, info, input, parent=None):  # noqa: A002
        category = {"id": self._id("Category"), "slug": input["slug"], "name": input["name"]}
        self.categories[category["id"]] = category
        return {"category": {"id": category["id"]}, "errors": []}

    def _check_attributes(self, product_type: dict, values: list[dict], allowed_key: str) -> list[dict]:
        errors = []
        for item in values:
            attribute = self.attributes.get(item["id"])
            if attribute is None or item["id"] not in product_type[allowed_key]:
                errors.append(_error("attributes", "INVALID", f"Attribute {item['id']} not in product type."))
                continue
            chosen = ([item["dropdown"]] if item.get("dropdown") else []) + list(item.get("multiselect") or [])
            known = {v["id"] for v in attribute["values"]}
            if any(c.get("id") not in known for c in chosen):
                errors.append(_error("attributes", "INVALID", f"Unknown value for {attribute['slug']}."))
        return errors

    @staticmethod
    def _assigned(values: list[dict]) -> dict[str, Any]:
        assigned = {}
        for item in values:
            if item.get("dropdown"):
                assigned[item["id"]] = [item["dropdown"]["id"]]
            elif "multiselect" in item:
                assigned[item["id"]] = [c["id"] for c in item["multiselect"]]
            elif item.get("numeric") is not None:
                assigned[item["id"]] = item["numeric"]
            else:
                assigned[item["id"]] = None
        return assigned

    def _apply_product_input(self, product: dict, data: dict) -> list[dict]:
        if "slug" in data and any(p["slug"] == data["slug"] and p["id"] != product.get("id")
                                  for p in self.products.values()):
            return [_error("slug", "UNIQUE", "Product with this Slug already exists.")]
        if data.get("category") and data["category"] not in self.categories:
            return [_error("category", "NOT_FOUND", "No such category.")]
        product_type = self.product_types[product["productType"]]
        errors = self._check_attributes(product_type, data.get("attributes") or [], "productAttributes")
        if errors:
            return errors
        for key in ("name", "slug", "description", "category", "seo"):
            if key in data:
                product[key] = data[key]
        product["attributes"].update(self._assigned(data.get("attributes") or []))
        for item in data.get("metadata") or []:
            product["metadata"][item["key"]] = item["value"]
        return []

    def product_create(self, info, input):  # noqa: A002
        if input["productType"] not in self.product_types:
            return {"product": None, "errors": [_error("productType", "NOT_FOUND", "No such product type.")]}
        product = {"id": None, "productType": input["productType"], "attributes": {}, "metadata": {},
                   "channels": {}}
        errors = self._apply_product_input(product, input)
        if errors:
            return {"product": None, "errors": errors}
        product["id"] = self._id("Product")
        self.products[product["id"]] = product
        return {"product": {"id": product["id"], "slug": product["slug"]}, "errors": []}

    def product_update(self, info, input, id=None, externalReference=None):  # noqa: A002, N803
        product = self.products.get(id)
        if product is None:
            return {"product": None, "errors": [_error("id", "NOT_FOUND", "No such product.")]}
        errors = self._apply_product_input(product, input)
        return {"product": None if errors else {"id": id}, "errors": errors}

    def variant_create(self, info, input):  # noqa: A002
        if any(v["sku"] == input["sku"] for v in self.variants.values()):
            return {"productVariant": None, "errors": [_error("sku", "UNIQUE", "SKU already exists.")]}
        product = self.products.get(input["product"])
        if product is None:
            return {"productVariant": None, "errors": [_error("product", "NOT_FOUND", "No such product.")]}
        errors = self._check_attributes(self.product_types[product["productType"]], input["attributes"],
                                        "variantAttributes")
        if errors:
            return {"productVariant": None, "errors": errors}
        variant = {"id": self._id("ProductVariant"), "sku": input["sku"], "name": input.get("name"),
                   "product": product["id"], "attributes": self._assigned(input["attributes"]),
                   "trackInventory": input.get("trackInventory"), "stocks": list(input.get("stocks") or []),
                   "prices": {}, "metadata": {m["key"]: m["value"] for m in input.get("metadata") or []}}
        self.variants[variant["id"]] = variant
        return {"productVariant": {"id": variant["id"], "sku": variant["sku"]}, "errors": []}

    def variant_update(self, info, input, id=None, sku=None, externalReference=None):  # noqa: A002, N803
        variant = self.variants.get(id)
        if variant is None:
            return {"productVariant": None, "errors": [_error("id", "NOT_FOUND", "No such variant.")]}
        product = self.products[variant["product"]]
        errors = self._check_attributes(self.product_types[product["productType"]], input.get("attributes") or [],
                                        "variantAttributes")
        if errors:
            return {"productVariant": None, "errors": errors}
        for key in ("name", "sku", "trackInventory"):
            if key in input:
                variant[key] = input[key]
        variant["metadata"].update({m["key"]: m["value"] for m in input.get("metadata") or []})
        variant["attributes"].update(self._assigned(input.get("attributes") or []))
        return {"productVariant": {"id": variant["id"], "sku": variant["sku"]}, "errors": []}

    def product_channel_listing_update(self, info, id, input):  # noqa: A002
        product = self.products.get(id)
        if product is None:
            return {"product": None, "errors": [_error("id", "NOT_FOUND", "No such product.")]}
        for listing in input.get("updateChannels") or []:
            product["channels"][listing["channelId"]] = {
                k: listing.get(k) for k in ("isPublished", "visibleInListings", "isAvailableForPurchase")}
        return {"product": {"id": id}, "errors": []}

    def variant_channel_listing_update(self, info, input, id=None, sku=None):  # noqa: A002
        variant = self.variants.get(id)
        if variant is None:
            return {"variant": None, "errors": [_error("id", "NOT_FOUND", "No such variant.")]}
        product = self.products[variant["product"]]
        for listing in input:
            if listing["channelId"] not in product["channels"]:
                return {"variant": None, "errors": [_error(
                    "channelId", "PRODUCT_NOT_ASSIGNED_TO_CHANNEL", "Product not available in channels.")]}
            variant["prices"][listing["channelId"]] = str(listing["price"])
        return {"variant": {"id": id}, "errors": []}
