"""The application as `bench/pages.py` serves it with gunicorn (`bench.pages_wsgi:app`), plus a bare page.

/bench/bare is a separate, bare Flask app mounted beside the marketplace in the same gunicorn
workers: one view that renders 20 offering cards (the storefront's card markup) from a Jinja
template, with no database, session or hooks. Its rate is what rendering a page of cards costs on
the machine at hand, and the catalog pages are measured against it in the same run.
"""
from __future__ import annotations

from flask import Flask, render_template, url_for
from jinja2 import DictLoader
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from app import create_app

BARE_TEMPLATE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Bare cards</title></head>
<body>
<main>
  <h1>Offerings</h1>
  <div class="cards">
  {% for card in cards %}
  <article class="offering-card" aria-labelledby="offering-{{ card.slug }}-name">
    <div class="card-top">
      <span class="offering-icon icon-{{ card.category }}" aria-hidden="true">{{ card.name[:1]|upper }}</span>
      <div class="card-badges">
        {% if card.has_trial %}<span class="badge badge-ok">Free trial</span>{% endif %}
        {% if card.featured %}<span class="badge badge-featured">Featured</span>{% endif %}
      </div>
    </div>
    <h3 id="offering-{{ card.slug }}-name"><a class="card-link" href="{{ url_for('card', slug=card.slug) }}">{{ card.name }}</a></h3>
    <p class="card-publisher">by {{ card.publisher }}</p>
    <p class="summary">{{ card.summary }}</p>
    <div class="meta">
      <span class="card-category">{{ card.category_label }}</span>
      <span class="price"><span class="muted small">from</span> {{ "$%.2f"|format(card.price_minor / 100) }}</span>
    </div>
  </article>
  {% endfor %}
  </div>
</main>
</body>
</html>
"""

CARDS = [
    {
        "slug": f"offering-{n}", "name": f"Offering number {n}", "category": "agents", "category_label": "Agents",
        "publisher": "Bench Publishing", "summary": "Answers support tickets from your knowledge base, day and night.",
        "has_trial": n % 2 == 0, "featured": n % 5 == 0, "price_minor": 1900 + 100 * n,
    }
    for n in range(20)
]

bare = Flask("bare")
bare.jinja_loader = DictLoader({"cards.html": BARE_TEMPLATE})


@bare.get("/")
def bare_page():
    return render_template("cards.html", cards=CARDS)


@bare.get("/p/<slug>")
def card(slug: str):
    return url_for("card", slug=slug)


app = create_app()
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/bench/bare": bare})
