"""The one Discord adapter: status messages, posting a finished video where it belongs, and notices of endings.

The only services package that imports discord; it may import any other services package, nothing from cogs.
"""
