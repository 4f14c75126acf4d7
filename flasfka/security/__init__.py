"""Who is asking, and what they may do: secret hashes, principals, ACL rules, throttling.

Nothing here knows HTTP; flasfka.http.auth turns requests into these questions.
"""
