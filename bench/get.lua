-- wrk script: GET one TURN key (env TK_ACCOUNT, TK_KEY_UID, TK_TOKEN).
wrk.method = "GET"
wrk.path = "/client/v4/accounts/" .. os.getenv("TK_ACCOUNT") .. "/calls/turn_keys/" .. os.getenv("TK_KEY_UID")
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TK_TOKEN")

done = function(summary, latency, requests)
  io.write(string.format("BENCH non2xx=%d\n", summary.errors.status))
end
