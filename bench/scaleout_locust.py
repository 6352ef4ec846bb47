"""The load of bench/scaleout.py: buyers who browse, search, sign in, open their account pages and run
their agent. Each simulated buyer is one of the prepared accounts (SCALEOUT_FIXTURES) and comes from an
address of its own, which the proxy passes on as X-Forwarded-For (the app trusts its proxy)."""
from __future__ import annotations

import itertools
import json
import os
import random
import re

from locust import HttpUser, between, task

FIXTURES = json.loads(open(os.environ["SCALEOUT_FIXTURES"]).read())
WORDS = ["support", "email", "invoice", "lead", "summary", "assistant", "agent", "csv", "onboarding", "seo"]
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')
_numbers = itertools.count()


class Buyer(HttpUser):
    wait_time = between(0.2, 1.0)

    def on_start(self) -> None:
        n = next(_numbers)
        self.me = FIXTURES["buyers"][n % len(FIXTURES["buyers"])]
        self.client.headers["X-Bench-Client"] = f"198.51.{100 + n // 250}.{n % 250 + 1}"
        self.sign_in()

    def sign_in(self) -> None:
        page = self.client.get("/auth/login", name="/auth/login [form]")
        token = CSRF.search(page.text)
        if token is None:
            page.failure("no CSRF token on the sign-in page")
            return
        with self.client.post("/auth/login", data={"email": self.me["email"], "password": self.me["password"],
                                                   "csrf_token": token.group(1), "next": ""},
                              allow_redirects=False, catch_response=True, name="/auth/login [sign in]") as answer:
            if answer.status_code != 302:
                answer.failure(f"sign-in answered {answer.status_code}")

    @task(4)
    def browse(self) -> None:
        self.client.get(random.choice(["/", "/browse", "/browse/agents", "/browse/automations"]), name="browse")

    @task(3)
    def search(self) -> None:
        self.client.get(f"/search?q={random.choice(WORDS)}", name="/search")

    @task(2)
    def account(self) -> None:
        with self.client.get(random.choice(["/account/agents", "/account/billing"]), allow_redirects=False,
                             catch_response=True, name="account") as answer:
            if answer.status_code != 200:
                answer.failure(f"account page answered {answer.status_code} (signed out?)")

    @task(2)
    def run_agent(self) -> None:
        with self.client.post(f"/api/instances/{self.me['instance_id']}/runs", catch_response=True, name="run",
                              json={"input": "How do I reset my password?"},
                              headers={"X-API-Key": self.me["api_key"], "Prefer": "wait=30"}) as answer:
            if answer.status_code != 201:
                answer.failure(f"run answered {answer.status_code}: {answer.text[:200]}")

    @task(1)
    def sign_in_again(self) -> None:
        self.sign_in()
