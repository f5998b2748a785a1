"""Demo data of Zherong County (JSON), loaded by `bureau.seed`; every row is fictional and marked 示例."""
