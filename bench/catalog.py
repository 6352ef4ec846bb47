"""Catalog search benchmark: the full search page against its SQL floor, at 10,000 and 100,000 offerings.

For each database and size it builds a fresh catalog of N generated offerings (realistic text,
six facet groups, three plans each), then times a fixed mix of searches two ways:

- page:  GET /search?... through Flask's test client with the default CATALOG_INDEX=memory:
         routing, argument parsing, the revision check, the text match in SQL, facet counts and
         ordering from the in-process index (built once before timing, and its build time and
         size printed), the cards of the page, and the HTML;
- floor: the search done in SQL alone (the facet-count statement and the page-of-ids statement
         of CATALOG_INDEX=sql, precompiled, on a bare connection): what a page that counts in the
         database can never beat. The in-memory index is there to beat it on large catalogs.

It prints median and p95 for each, the page/floor ratio (target: at most 2 at 10,000 offerings)
and the 100,000/10,000 ratio of the page (target: at most 2).

    python bench/catalog.py --sqlite                            # SQLite files in a temp dir
    python bench/catalog.py --postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/catalog.py --sqlite --sizes 10000 --iterations 20
    python bench/catalog.py --saleor-url http://127.0.0.1:8000/graphql/ --saleor-channel default-channel

The PostgreSQL database given is wiped (schema public dropped and recreated) for each size.

With --saleor-url it measures Saleor mode side by side instead, against whatever that Saleor holds
(sync the marketplace into it first: `flask sync-saleor`): for each search, Saleor's own product-list
query (the one ProductList request a storefront needs, sent over a kept-alive connection) and our
search page in Saleor mode (GET /search through the app, vocabulary cached as in production),
alternating in one run. Target: the page within 1.2x of the list query (median).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, insert, text  # noqa: E402
from app import create_app  # noqa: E402
from werkzeug.datastructures import MultiDict  # noqa: E402

from app.adapters.commerce.local import LocalCatalog, SearchStatements  # noqa: E402
from app.extensions import db  # noqa: E402
from app.adapters.commerce.catalog_index import index_for  # noqa: E402
from app.models import FacetValue, Offering, OfferingFacet, Organization, Plan  # noqa: E402
from app.models.catalog import bump_catalog_revision  # noqa: E402
from app.services import catalog as catalog_service  # noqa: E402
from app.services.demo_data import FACET_VOCABULARY  # noqa: E402

DOMAIN_WORDS = (
    "support ticket invoice email lead meeting onboarding contract report dashboard forecast churn "
    "pipeline recruiting payroll compliance translation summary research knowledge chat document "
    "inventory shipping refund review sentiment survey schedule calendar marketing campaign seo "
    "content social analytics finance budget expense audit security incident triage routing "
    "classification extraction transcription voice image code testing deployment monitoring"
).split()
SYLLABLES = "ka lo mi ne ru sa to vi ze bo da fe gu hi jo pa qui re si tu va wo xa yo zu".split()
QUERIES = [  # (label, arguments): broad and selective, text and facets, as a storefront sees them
    ("browse everything", {}),
    ("category + role", {"category": "agents", "role": "support"}),
    ("text: common word", {"q": "invoice"}),
    ("text + 2 facets", {"q": "support", "pricing": "free-trial", "capability": "chat"}),
    ("prefix as typed", {"q": "onboa"}),
    ("text: rare word", {"q": "kalomi"}),
    ("text, sort by price", {"q": "email", "sort": "price_asc"}),
]


def pseudo_words(rng: random.Random, count: int) -> list[str]:
    words = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def generate(engine, n: int, seed: int = 7) -> None:
    """N published offerings with text, facets and three plans each, written in bulk."""
    rng = random.Random(seed)
    vocabulary = pseudo_words(rng, 4000) + ["kalomi"]
    weights = [1 / (i + 1) for i in range(len(vocabulary))]  # Zipf-like: a few words everywhere, most rare
    publishers = max(20, n // 100)
    now = datetime(2026, 11, 1, tzinfo=timezone.utc)
    search_index = None
    if engine.dialect.name == "postgresql":  # bulk load first, then build the GIN index once
        with engine.begin() as conn:
            search_index = conn.execute(text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_offering_search_vector'")).scalar_one()
            conn.execute(text("DROP INDEX ix_offering_search_vector"))
    with engine.begin() as conn:
        conn.execute(insert(Organization), [
            {"id": i + 1, "name": f"Publisher {i + 1}", "slug": f"publisher-{i + 1}", "is_personal": False,
             "created_at": now} for i in range(publishers)
        ])
        values = [{"group": g, "slug": s, "label": label} for g, pairs in FACET_VOCABULARY.items() for s, label in pairs]
        values += [{"group": "publisher", "slug": f"publisher-{i + 1}", "label": f"Publisher {i + 1}"}
                   for i in range(publishers)]
        conn.execute(insert(FacetValue), values)
        groups = {g: [s for s, _ in pairs] for g, pairs in FACET_VOCABULARY.items() if pairs}
        chunk = 5000
        for start in range(0, n, chunk):
            offerings, facets, plans = [], [], []
            for i in range(start, min(n, start + chunk)):
                oid = i + 1
                domain = rng.sample(DOMAIN_WORDS, 3)
                rare = rng.choices(vocabulary, weights=weights, k=40)
                name = f"{domain[0].title()} {rng.choice(vocabulary).title()} {oid}"
                category = rng.choice(groups["category"])
                trial = rng.random() < 0.3
                publisher = rng.randint(1, publishers)
                offerings.append({
                    "id": oid, "slug": f"offering-{oid}", "name": name,
                    "summary": f"Handles {domain[0]} and {domain[1]} work for {rng.choice(DOMAIN_WORDS)} teams.",
                    "description_md": f"## {domain[2].title()}\n\n" + " ".join(rare),
                    "category": category, "publisher_id": publisher, "status": "published", "featured": rng.random() < 0.01,
                    "trial_days": 14 if trial else 0, "trial_credits": 50 if trial else 0, "faq_json": "[]",
                    "created_at": now, "updated_at": now, "published_at": now - timedelta(minutes=oid),
                })
                chosen = {"category": [category], "publisher": [f"publisher-{publisher}"]}
                for group in ("outcome", "role", "capability"):
                    chosen[group] = rng.sample(groups[group], rng.randint(1, 2))
                chosen["pricing"] = (["free-trial"] if trial else []) + [rng.choice(["subscription", "usage-based"])]
                facets += [{"offering_id": oid, "group": g, "value": v} for g, vs in chosen.items() for v in vs]
                base = rng.randint(5, 80) * 100
                plans += [
                    {"offering_id": oid, "tier": tier, "name": tier.title(), "sku": f"SKU-{oid}-{tier}",
                     "price_minor": base * factor, "currency": "USD", "interval": "month",
                     "included_credits": 100 * factor, "credits_per_run": 1, "credits_per_1k_units": 0,
                     "max_runs_per_period": None, "max_credits_per_run": 10, "features": ""}
                    for tier, factor in (("starter", 1), ("pro", 3), ("enterprise", 10))
                ]
            conn.execute(insert(Offering), offerings)
            conn.execute(insert(OfferingFacet), facets)
            conn.execute(insert(Plan), plans)
        bump_catalog_revision(conn)  # bulk inserts bypass the ORM hook that does this
        if engine.dialect.name == "sqlite":
            conn.execute(text("INSERT INTO offering_fts (rowid, name, summary, description) "
                              "SELECT id, name, summary, description_md FROM offering"))
            conn.execute(text("ANALYZE"))
            conn.execute(text("INSERT INTO offering_fts (offering_fts) VALUES ('optimize')"))
    if search_index is not None:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(search_index))
            conn.execute(text("VACUUM ANALYZE"))


def timed_pair(first, second, iterations: int, warmup: int = 2) -> tuple[list[float], list[float]]:
    """Time two callables alternately, so both see the same machine (other load comes and goes)."""
    for _ in range(warmup):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(iterations):
        for fn, out in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
    return samples


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def bench_database(url: str, n: int, iterations: int) -> dict[str, dict[str, float]]:
    app = create_app({"TESTING": True, "SECRET_KEY": "bench-secret-key-0123456789", "SQLALCHEMY_DATABASE_URI": url,
                      "WTF_CSRF_ENABLED": False, "SERVER_NAME": None})
    with app.app_context():
        from flask_migrate import upgrade
        upgrade()
        engine = db.engine
        started = time.perf_counter()
        generate(engine, n)
        print(f"  generated {n:,} offerings in {time.perf_counter() - started:.1f} s", flush=True)
        db.session.remove()
        started = time.perf_counter()
        index = index_for(db.session)
        print(f"  in-process index built in {time.perf_counter() - started:.2f} s: {index.size:,} offerings, "
              f"{len(index.row_pos):,} facet rows, {index.nbytes / 2**20:.1f} MiB of arrays", flush=True)
        db.session.remove()

        results = {}
        client = app.test_client()
        raw = engine.connect()
        for label, args in QUERIES:
            query = catalog_service.parse_search_args(MultiDict(args), LocalCatalog(db.session))
            statements = SearchStatements(engine.dialect.name, query)
            facet_counts, page_ids = statements.facet_counts(), statements.page_ids()

            def floor():
                raw.execute(facet_counts).all()
                raw.execute(page_ids).all()

            url = "/search?" + urlencode(args)

            def page():
                response = client.get(url)
                assert response.status_code == 200, (url, response.status_code)

            floor_ms, page_ms = timed_pair(floor, page, iterations)
            total = client.get(url).get_data(as_text=True).split('class="results-count"', 1)[1].split("<strong>")[1]
            results[label] = {
                "floor_median": statistics.median(floor_ms), "floor_p95": p95(floor_ms),
                "page_median": statistics.median(page_ms), "page_p95": p95(page_ms),
                "results": int(total.split("</strong>")[0].replace(",", "")),
            }
            print(f"  {label:<22} {results[label]['results']:>7,} results  floor {results[label]['floor_median']:7.1f} ms "
                  f"(p95 {results[label]['floor_p95']:7.1f})  page {results[label]['page_median']:7.1f} ms "
                  f"(p95 {results[label]['page_p95']:7.1f})  ratio {results[label]['page_median'] / results[label]['floor_median']:4.2f}",
                  flush=True)
        raw.close()
        db.session.remove()
        db.engine.dispose()
    return results


SALEOR_QUERIES = [  # (label, arguments) for Saleor mode: the store has no facet counts to time
    ("browse everything", {}),
    ("text: support", {"q": "support"}),
    ("text + facet", {"q": "support", "category": "agents"}),
    ("facet only", {"role": "support"}),
    ("text, sort by price", {"q": "a", "sort": "price_asc"}),
]


def bench_saleor(url: str, channel: str, iterations: int, *, quiet: bool = False) -> dict[str, dict[str, float]]:
    """Saleor's own ProductList request against our Saleor-mode search page, alternating."""
    import requests
    from werkzeug.datastructures import MultiDict as Args

    from app.adapters.commerce import get_catalog
    from app.adapters.commerce.saleor import client as saleor_client
    from app.adapters.commerce.saleor.catalog import SORT_FIELDS

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({"TESTING": True, "SECRET_KEY": "bench-secret-key-0123456789",
                          "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp}/saleor-bench.db", "WTF_CSRF_ENABLED": False,
                          "SERVER_NAME": None, "COMMERCE_BACKEND": "saleor", "SALEOR_API_URL": url,
                          "SALEOR_CHANNEL": channel,
                          # every request renders its page and asks Saleor: a kept page would time the cache
                          "PAGE_CACHE_ENABLED": False})
        results: dict[str, dict[str, float]] = {}
        with app.app_context():
            from flask_migrate import upgrade
            upgrade()
            page_client = app.test_client()
            http = requests.Session()  # Saleor's side gets a kept-alive connection too
            document = saleor_client.document_source("ProductList")
            for label, args in SALEOR_QUERIES:
                with app.test_request_context():
                    catalog = get_catalog()
                    query = catalog_service.parse_search_args(Args(args), catalog)
                    scope = catalog._scope() or {}
                    names = catalog.names
                where = {"isPublished": True, "isVisibleInListing": True, **scope}
                attributes = [{"slug": names.attribute(g), "value": {"slug": {"oneOf": list(v)}}}
                              for g, v in query.filters if v]
                if attributes:
                    where["attributes"] = attributes
                field, direction = (("RANK", "DESC") if query.q else ("CREATED_AT", "DESC")) \
                    if query.sort == "relevance" else SORT_FIELDS[query.sort]
                variables = {"channel": channel, "where": where, "first": query.per_page,
                             "sortBy": {"field": field, "direction": direction}}
                if query.q:
                    variables["search"] = query.q
                body = {"query": document, "variables": variables, "operationName": "ProductList"}

                def saleor_list():
                    answer = http.post(url, json=body, timeout=10)
                    assert answer.status_code == 200 and not answer.json().get("errors"), answer.text[:300]

                path = "/search?" + urlencode(args)

                def page():
                    response = page_client.get(path)
                    assert response.status_code == 200, (path, response.status_code)

                list_ms, page_ms = timed_pair(saleor_list, page, iterations)
                results[label] = {"list_median": statistics.median(list_ms), "list_p95": p95(list_ms),
                                  "page_median": statistics.median(page_ms), "page_p95": p95(page_ms)}
                if not quiet:
                    r = results[label]
                    print(f"  {label:<22} Saleor list {r['list_median']:7.1f} ms (p95 {r['list_p95']:7.1f})  "
                          f"page {r['page_median']:7.1f} ms (p95 {r['page_p95']:7.1f})  "
                          f"ratio {r['page_median'] / r['list_median']:4.2f} (target 1.20)", flush=True)
            db.session.remove()
            db.engine.dispose()
    return results


def reset_postgres(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def report(name: str, by_size: dict[int, dict[str, dict[str, float]]]) -> None:
    sizes = sorted(by_size)
    print(f"\n{name}: medians in ms (p95 in brackets)")
    header = f"{'query':<22}" + "".join(f" | {f'{n:,}: floor':>18} {'page':>16} {'page/floor':>10}" for n in sizes)
    if len(sizes) > 1:
        header += f" | {'page ' + f'{sizes[-1]:,}/{sizes[0]:,}':>18}"
    print(header)
    for label, _ in QUERIES:
        row = f"{label:<22}"
        for n in sizes:
            r = by_size[n][label]
            row += (f" | {r['floor_median']:7.1f} [{r['floor_p95']:7.1f}] {r['page_median']:7.1f} [{r['page_p95']:6.1f}]"
                    f" {r['page_median'] / r['floor_median']:10.2f}")
        if len(sizes) > 1:
            row += f" | {by_size[sizes[-1]][label]['page_median'] / by_size[sizes[0]][label]['page_median']:18.2f}"
        print(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sqlite", action="store_true", help="benchmark SQLite (files in a temporary directory)")
    parser.add_argument("--postgres-url", default="", help="a PostgreSQL database to wipe and benchmark")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--iterations", type=int, default=15, help="timed runs per query (after 2 warm-ups)")
    parser.add_argument("--saleor-url", default="", help="a Saleor GraphQL endpoint holding the synced marketplace")
    parser.add_argument("--saleor-channel", default="default-channel")
    args = parser.parse_args()
    if not args.sqlite and not args.postgres_url and not args.saleor_url:
        parser.error("choose --sqlite, --postgres-url and/or --saleor-url")
    os.environ.setdefault("APP_ENV", "development")

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs", flush=True)
    if args.saleor_url:
        print(f"Saleor mode against {args.saleor_url} (channel {args.saleor_channel})", flush=True)
        bench_saleor(args.saleor_url, args.saleor_channel, args.iterations)
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            by_size = {}
            for n in args.sizes:
                print(f"SQLite, {n:,} offerings", flush=True)
                by_size[n] = bench_database(f"sqlite:///{tmp}/catalog-{n}.db", n, args.iterations)
            report("SQLite", by_size)
    if args.postgres_url:
        by_size = {}
        for n in args.sizes:
            print(f"PostgreSQL, {n:,} offerings", flush=True)
            reset_postgres(args.postgres_url)
            by_size[n] = bench_database(args.postgres_url, n, args.iterations)
        report("PostgreSQL", by_size)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
