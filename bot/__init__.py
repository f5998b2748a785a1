"""The Rasa assistant's files; `bot.gateway_channel` is the one Python module Rasa loads from here."""
