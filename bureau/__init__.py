"""The bureau's domain: models, rules and queries shared by the bot, the console and the broadcast.

Nothing here imports Flask or rasa-sdk.
"""
