"""What every benchmark shares: a throw-away Django site, a real HTTP server, side-by-side timing.

Nothing here is imported by Flowsite itself. ``settings`` and ``urls`` add a bare "hello" view to
the real URLconf (through the real middleware stack), ``wsgi`` stamps each answer with the time
the application took, and ``run`` holds the helpers the scripts call.
"""
