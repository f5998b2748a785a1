"""rasa-sdk custom actions, one module per feature. Thin: read slots, call `bureau`, utter."""
