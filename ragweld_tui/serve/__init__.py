"""`ragweld-tui serve`: the learned reranker behind an HTTP API, following every promotion.

`app` holds the routes, `api_input` the request checks, `feedback` the learning loop's file and
`runner` the process: uvicorn, the scoring worker, the store registration and the background tasks.
"""
