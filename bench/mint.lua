-- wrk script: POST generate-ice-servers with the key's bearer (env TK_KEY_UID, TK_KEY).
wrk.method = "POST"
wrk.path = "/v1/turn/keys/" .. os.getenv("TK_KEY_UID") .. "/credentials/generate-ice-servers"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TK_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"ttl":3600}'

done = function(summary, latency, requests)
  local non2xx = summary.errors.status
  io.write(string.format("BENCH non2xx=%d\n", non2xx))
end
