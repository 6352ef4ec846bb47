"""The demo catalog: ten offerings, their publishers, facet vocabularies and credit packs."""
from __future__ import annotations

FACET_VOCABULARY: dict[str, list[tuple[str, str]]] = {
    "category": [("agents", "Agents"), ("apps", "Apps"), ("assistants", "Assistants"), ("automations", "Automations")],
    "outcome": [
        ("reduce-support-load", "Reduce support load"), ("grow-pipeline", "Grow pipeline"),
        ("save-time", "Save time"), ("improve-quality", "Improve quality"),
        ("faster-onboarding", "Faster onboarding"), ("better-decisions", "Better decisions"),
    ],
    "role": [
        ("support", "Support"), ("sales", "Sales"), ("marketing", "Marketing"), ("engineering", "Engineering"),
        ("operations", "Operations"), ("hr", "HR"), ("finance", "Finance"),
    ],
    "capability": [
        ("chat", "Chat"), ("retrieval", "Retrieval"), ("email-drafting", "Email drafting"),
        ("summarization", "Summarization"), ("classification", "Classification"),
        ("data-extraction", "Data extraction"), ("workflow", "Workflow"), ("analytics", "Analytics"),
    ],
    "pricing": [("free-trial", "Free trial"), ("subscription", "Subscription"), ("usage-based", "Usage-based")],
    "publisher": [],  # filled from publisher organizations
}

PUBLISHERS = {
    "digitlify-labs": "Digitlify Labs",
    "northwind-ai": "Northwind AI",
}

CREDIT_PACKS = [
    ("CREDITS-100", "100 credits", 100, 1000),
    ("CREDITS-500", "500 credits", 500, 4500),
    ("CREDITS-2000", "2,000 credits", 2000, 16000),
]

# tier -> (name, price factor, included credits factor, max runs, features)
PLAN_SHAPES = {
    "starter": ("Starter", 1, 1, 300, "Email support\nOne workspace\nStandard response time"),
    "pro": ("Pro", 3, 6, 3000, "Priority support\nTeam workspaces\nAPI access with keys\nUsage analytics"),
    "enterprise": ("Enterprise", 10, 30, None, "Dedicated success manager\nUnlimited runs\nSSO and audit log\n99.9% uptime SLA"),
}

OFFERINGS: list[dict] = [
    {
        "name": "Customer Support Agent", "category": "agents", "publisher": "northwind-ai", "featured": True,
        "summary": "Answers customer questions from your help-center FAQ, with the source it used and a confidence score.",
        "description": (
            "## Answer tickets in seconds\n\nThe Customer Support Agent reads your FAQ and answers each question "
            "with the best-matching entry, ranked by relevance. Every answer cites the question it came from, so "
            "your team can check it before sending.\n\n### What it does\n- Ranks FAQ entries against the "
            "customer's question\n- Says when it is not confident, instead of guessing\n- Works through the API "
            "from your help desk\n\n### Good for\nSupport teams that answer the same twenty questions every day."
        ),
        "outcome": ["reduce-support-load", "save-time"], "role": ["support"], "capability": ["chat", "retrieval"],
        "pricing": ["free-trial", "subscription"], "trial_days": 14, "trial_credits": 50, "base_price": 2900,
        "base_credits": 200, "runtime": "support-faq", "per_run": 2,
        "faq": [
            {"q": "How do I reset my password?", "a": "Go to Settings > Security and choose 'Reset password'. We email you a link that works for 30 minutes."},
            {"q": "Can I change my plan later?", "a": "Yes. Upgrade or downgrade any time from Billing; changes apply at the next billing period."},
            {"q": "How do I cancel my subscription?", "a": "Open My Agents, pick the subscription and choose Cancel. You keep access until the period ends."},
            {"q": "Do you offer refunds?", "a": "We refund unused credits within 14 days of purchase. Contact support with your order number."},
            {"q": "Where can I download my invoices?", "a": "Invoices are under Account > Orders; each order has a printable receipt."},
            {"q": "Is my data encrypted?", "a": "Yes: in transit with TLS 1.2+ and at rest with AES-256. Connector secrets are stored encrypted."},
            {"q": "What are your support hours?", "a": "Our team answers Monday to Friday, 8:00-18:00 CET. Pro and Enterprise plans get priority replies."},
            {"q": "How do API keys work?", "a": "Create a key on the instance page. It is shown once; store it safely and send it as the X-API-Key header."},
        ],
    },
    {
        "name": "Knowledge Base Assistant", "category": "assistants", "publisher": "digitlify-labs", "featured": True,
        "summary": "Searches the documents you add and answers with the passages that matter, ranked and quoted.",
        "description": (
            "## Your documents, searchable in plain language\n\nAdd policies, runbooks and product notes to "
            "your instance. Ask a question and the assistant returns the most relevant passages with their "
            "titles, so answers stay grounded in what you wrote.\n\n- Ranked retrieval over your own documents\n"
            "- Quotes the passage, names the document\n- Nothing leaves your workspace"
        ),
        "outcome": ["save-time", "faster-onboarding"], "role": ["operations", "hr", "engineering"],
        "capability": ["retrieval", "chat"], "pricing": ["free-trial", "subscription"], "trial_days": 7,
        "trial_credits": 40, "base_price": 1900, "base_credits": 150, "runtime": "kb-search", "per_run": 1,
    },
    {
        "name": "Sales Outreach Agent", "category": "agents", "publisher": "northwind-ai", "featured": True,
        "summary": "Drafts a personal first-touch email from a lead's name, company, role and pain point.",
        "description": (
            "## First emails that sound like you wrote them\n\nGive the agent a few facts about a lead and "
            "get a concise outreach email with a subject line, a specific opening and a clear call to action.\n\n"
            "Fields it understands: `name`, `company`, `role`, `pain`, `product`, `sender`."
        ),
        "outcome": ["grow-pipeline", "save-time"], "role": ["sales", "marketing"], "capability": ["email-drafting"],
        "pricing": ["subscription", "usage-based"], "trial_days": 0, "trial_credits": 0, "base_price": 3900,
        "base_credits": 300, "runtime": "sales-email", "per_run": 2,
    },
    {
        "name": "Meeting Notes Summarizer", "category": "assistants", "publisher": "digitlify-labs",
        "summary": "Turns raw meeting notes into a short summary, decisions and action items with owners.",
        "description": (
            "## Leave every meeting with a plan\n\nPaste your notes or transcript. The summarizer picks the "
            "sentences that carry the meeting, lists decisions, and pulls out action items with their owners."
        ),
        "outcome": ["save-time", "better-decisions"], "role": ["operations", "engineering", "sales"],
        "capability": ["summarization"], "pricing": ["free-trial", "subscription"], "trial_days": 7,
        "trial_credits": 30, "base_price": 1500, "base_credits": 150, "runtime": "summarize", "per_run": 1,
    },
    {
        "name": "Ticket Triage Automation", "category": "automations", "publisher": "northwind-ai",
        "summary": "Classifies incoming tickets by topic and urgency and routes them to the right queue.",
        "description": (
            "## Stop sorting tickets by hand\n\nEach ticket is scored against topic vocabularies (billing, "
            "bug, account, feature request) and urgency signals, then routed with the reasons it was given."
        ),
        "outcome": ["reduce-support-load", "improve-quality"], "role": ["support", "operations"],
        "capability": ["classification", "workflow"], "pricing": ["subscription", "usage-based"],
        "trial_days": 0, "trial_credits": 0, "base_price": 2400, "base_credits": 500, "runtime": "triage", "per_run": 1,
    },
    {
        "name": "Invoice Data Extractor", "category": "apps", "publisher": "digitlify-labs",
        "summary": "Pulls invoice number, dates, totals, tax and vendor from invoice text into clean JSON.",
        "description": (
            "## From PDF text to structured data\n\nPaste the text of an invoice and get its number, issue "
            "and due dates, currency, subtotal, tax and total as JSON, ready for your accounting system."
        ),
        "outcome": ["save-time", "improve-quality"], "role": ["finance", "operations"],
        "capability": ["data-extraction"], "pricing": ["usage-based"], "trial_days": 0, "trial_credits": 0,
        "base_price": 1900, "base_credits": 250, "runtime": "invoice-extract", "per_run": 1,
    },
    {
        "name": "Lead Scoring Agent", "category": "agents", "publisher": "northwind-ai",
        "summary": "Scores leads from firmographic and engagement signals, and explains every point.",
        "description": (
            "## Focus on the leads that will buy\n\nThe agent scores a lead from company size, role "
            "seniority, budget, timeline and engagement, and shows exactly which signals moved the score."
        ),
        "outcome": ["grow-pipeline", "better-decisions"], "role": ["sales"], "capability": ["classification", "analytics"],
        "pricing": ["free-trial", "subscription"], "trial_days": 14, "trial_credits": 40, "base_price": 3400,
        "base_credits": 300, "runtime": "lead-score", "per_run": 1,
    },
    {
        "name": "SEO Brief Writer", "category": "apps", "publisher": "digitlify-labs",
        "summary": "Builds a content brief from a draft or competitor page: key terms, outline and gaps.",
        "description": (
            "## Briefs your writers can use\n\nPaste a draft or a page you want to outrank. The app finds the "
            "terms that carry the text, proposes an outline and a title, and reports readability figures."
        ),
        "outcome": ["grow-pipeline", "improve-quality"], "role": ["marketing"], "capability": ["analytics", "summarization"],
        "pricing": ["subscription"], "trial_days": 0, "trial_credits": 0, "base_price": 2900, "base_credits": 200,
        "runtime": "seo-brief", "per_run": 2,
    },
    {
        "name": "Employee Onboarding Automation", "category": "automations", "publisher": "northwind-ai",
        "summary": "Creates a dated onboarding checklist for a new hire from their role, team and start date.",
        "description": (
            "## A great first week, every time\n\nGive the new hire's role, team and start date; get a "
            "checklist for IT, HR, the manager and the buddy, with due dates counted in working days."
        ),
        "outcome": ["faster-onboarding", "save-time"], "role": ["hr", "operations"], "capability": ["workflow"],
        "pricing": ["free-trial", "subscription"], "trial_days": 7, "trial_credits": 20, "base_price": 2200,
        "base_credits": 150, "runtime": "onboarding", "per_run": 1,
    },
    {
        "name": "CSV Data Cleaner", "category": "apps", "publisher": "digitlify-labs",
        "summary": "Normalizes, deduplicates and validates CSV data, and reports what it changed.",
        "description": (
            "## Clean data without a spreadsheet marathon\n\nPaste CSV with a header row. The cleaner trims "
            "whitespace, normalizes emails and phone numbers, removes duplicate rows and reports every change."
        ),
        "outcome": ["improve-quality", "save-time"], "role": ["operations", "finance", "engineering"],
        "capability": ["data-extraction", "workflow"], "pricing": ["usage-based", "subscription"], "trial_days": 0,
        "trial_credits": 0, "base_price": 1200, "base_credits": 200, "runtime": "csv-clean", "per_run": 1,
    },
]
