"""Connect a Saleor to the marketplace, once per Saleor: an app for the marketplace (its token is
SALEOR_APP_TOKEN) and its order-paid and order-refunded webhooks, pointing at the marketplace.

    python deploy/scripts/saleor_setup.py --api-url http://127.0.0.1:8000/graphql/ \
        --staff-email admin@example.com --target-url https://market.example.com/api/integrations/saleor/order-paid

The staff password is read from SALEOR_STAFF_PASSWORD (never from the command line). The staff user
needs MANAGE_APPS. The webhook has no secret key, so Saleor signs every body with its RS256 JWS, which
the marketplace verifies against Saleor's JWKS. Prints the lines to add to the marketplace's
environment. Uses the GraphQL documents beside it in deploy/saleor/.

The marketplace's product types (`<prefix>offering`, `<prefix>credit-pack`), attributes
(`<prefix>category` ...) and its featured collection are created by the marketplace's own product
sync (`flask --app app sync-saleor`) with the app token printed here; --attribute-prefix and
--featured-collection choose their names on a Saleor shared with other products.
Saleor must run its Celery worker and beat: without them webhooks go out inline inside checkout
(with instant retries) and synced products never reach the search index.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import requests

DOCUMENTS = Path(__file__).resolve().parent.parent / "saleor"
TIMEOUT = 15


def document(name: str) -> str:
    return (DOCUMENTS / f"{name}.graphql").read_text()


def call(api_url: str, name: str, variables: dict, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = requests.post(api_url, json={"query": document(name), "variables": variables}, headers=headers,
                           timeout=TIMEOUT)
    answer.raise_for_status()
    body = answer.json()
    if body.get("errors"):
        raise SystemExit(f"{name}: {body['errors'][0].get('message')}")
    (result,) = body["data"].values()
    if result.get("errors"):
        raise SystemExit(f"{name}: {result['errors']}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api-url", required=True, help="Saleor's GraphQL endpoint")
    parser.add_argument("--staff-email", required=True, help="a Saleor staff user with MANAGE_APPS")
    parser.add_argument("--target-url", required=True, help="the marketplace's /api/integrations/saleor/order-paid")
    parser.add_argument("--app-name", default="Digitlify Marketplace")
    parser.add_argument("--channel", default="default-channel", help="the Saleor channel the marketplace sells in")
    parser.add_argument("--attribute-prefix", default="digitlify-",
                        help="prefix of the marketplace's attributes and product types in Saleor")
    parser.add_argument("--featured-collection", default="digitlify-featured",
                        help="the collection the marketplace's sync keeps as its Featured list")
    args = parser.parse_args(argv)
    password = os.environ.get("SALEOR_STAFF_PASSWORD")
    if not password:
        parser.error("set SALEOR_STAFF_PASSWORD to the staff user's password")

    staff = call(args.api_url, "StaffToken", {"email": args.staff_email, "password": password})["token"]
    app = call(args.api_url, "MarketplaceAppCreate", {"name": args.app_name}, staff)
    webhook = call(args.api_url, "OrderPaidWebhookCreate", {
        "app": app["app"]["id"], "targetUrl": args.target_url, "query": document("OrderPaidForMarketplace")}, staff)
    refunds = call(args.api_url, "OrderRefundedWebhookCreate", {
        "app": app["app"]["id"], "targetUrl": args.target_url, "query": document("OrderRefundedForMarketplace")},
        staff)
    for hook in (webhook, refunds):
        events = sorted(e["eventType"] for e in hook["webhook"]["asyncEvents"])
        print(f"# Saleor app {app['app']['id']} with webhook {hook['webhook']['id']} for {', '.join(events)}",
              file=sys.stderr)
    print("COMMERCE_BACKEND=saleor")
    print(f"SALEOR_API_URL={args.api_url}")
    print(f"SALEOR_APP_TOKEN={app['authToken']}")
    print(f"SALEOR_CHANNEL={args.channel}")
    print(f"SALEOR_ATTRIBUTE_PREFIX={args.attribute_prefix}")
    print(f"SALEOR_FEATURED_COLLECTION={args.featured_collection}")
    print("# next: `flask --app app sync-saleor` creates the product types, attributes and collections; keep "
          "Saleor's Celery worker and beat running", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
