"""Business rules: typed functions `verb_noun(session, *, ...)` that raise `<Noun>Error` and never commit."""
