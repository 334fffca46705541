"""Rules: the query language, entities, and the matcher that explains itself."""
