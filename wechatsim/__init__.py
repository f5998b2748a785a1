"""A local WeChat stand-in: the server API (`wechatsim.server`) and the push client (`wechatsim.client`).

The project's one stand-in for WeChat: tests, `make chat` and the benchmarks talk to it instead of
api.weixin.qq.com, and it enforces the limits and error codes the real server would.
"""
