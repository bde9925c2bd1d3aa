/* cfg_keys.h - configuration keys the agent and the controller share: the
 * Redis connection and the hotspot rule. Each expands to rows of a struct
 * cfg_key table and uses the includer's O(field) (offsetof) and S(field)
 * (offsetof, sizeof) macros for its options struct, which must have
 * `struct store_opts redis`, `char redis_password_file[]`, `double peak_pct`,
 * `double threshold[RES_N]` and `long long k, n`. */
#ifndef LE_COMMON_CFG_KEYS_H
#define LE_COMMON_CFG_KEYS_H

/* timeout_def, backoff_def: the program's defaults, as strings (ms) */
#define CFG_REDIS_KEYS(timeout_def, backoff_def)                                                   \
	{"redis",                                                                                  \
	 "address",                                                                                \
	 CFG_STR,                                                                                  \
	 "127.0.0.1:6379",                                                                         \
	 S(redis.address),                                                                         \
	 0,                                                                                        \
	 0,                                                                                        \
	 NULL,                                                                                     \
	 "Redis as host:port or unix:/path/to/socket"},                                            \
	    {"redis", "user",        CFG_STR,                                                      \
	     "",      S(redis.user), 0,                                                            \
	     0,       NULL,          "ACL user (Redis 6+); empty = default user"},                 \
	    {"redis",                                                                              \
	     "password",                                                                           \
	     CFG_STR,                                                                              \
	     "",                                                                                   \
	     S(redis.password),                                                                    \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "password (AUTH); empty = none"},                                                     \
	    {"redis",                                                                              \
	     "password_file",                                                                      \
	     CFG_STR,                                                                              \
	     "",                                                                                   \
	     S(redis_password_file),                                                               \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "file holding the password (overrides `password`)"},                                  \
	    {"redis", "db", CFG_INT, "0", O(redis.db), 0, 0, 1000, NULL, "database number"},       \
	    {"redis",                                                                              \
	     "sentinels",                                                                          \
	     CFG_STR,                                                                              \
	     "",                                                                                   \
	     S(redis.sentinels),                                                                   \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "Redis Sentinel as host:port,host:port,...: the master is asked of them (and asked "  \
	     "again after a failover) instead of `address`; empty = no Sentinel"},                 \
	    {"redis",                                                                              \
	     "master_name",                                                                        \
	     CFG_STR,                                                                              \
	     "",                                                                                   \
	     S(redis.master_name),                                                                 \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "the master's name in Sentinel (`sentinel monitor <name> ...`)"},                     \
	    {"redis",                                                                              \
	     "sentinel_password",                                                                  \
	     CFG_STR,                                                                              \
	     "",                                                                                   \
	     S(redis.sentinel_password),                                                           \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "password (AUTH) of the sentinels; empty = none"},                                    \
	    {"redis", "timeout_ms", CFG_INT, timeout_def, O(redis.timeout_ms),                     \
	     0,       10,           60000,   NULL,        "connect and command timeout"},          \
	{                                                                                          \
		"redis", "backoff_max_ms", CFG_INT, backoff_def, O(redis.backoff_max_ms), 0, 100,  \
		    600000, NULL,                                                                  \
		    "longest wait between reconnect attempts (backoff starts at 250 ms and "       \
		    "doubles)"                                                                     \
	}

#define CFG_PROFILE_RULE_KEYS                                                                      \
	{"profile", "percentile", CFG_DOUBLE, "95", O(peak_pct),                                   \
	 0,         50,           100,        NULL, "the percentile taken as peak demand"},        \
	    {"profile",                                                                            \
	     "cpu_threshold",                                                                      \
	     CFG_DOUBLE,                                                                           \
	     "0.75",                                                                               \
	     O(threshold[RES_CPU]),                                                                \
	     0,                                                                                    \
	     0.01,                                                                                 \
	     1,                                                                                    \
	     NULL,                                                                                 \
	     "hotspot threshold for CPU (fraction of capacity)"},                                  \
	    {"profile",                                                                            \
	     "mem_threshold",                                                                      \
	     CFG_DOUBLE,                                                                           \
	     "0.75",                                                                               \
	     O(threshold[RES_MEM]),                                                                \
	     0,                                                                                    \
	     0.01,                                                                                 \
	     1,                                                                                    \
	     NULL,                                                                                 \
	     "hotspot threshold for memory"},                                                      \
	    {"profile",                                                                            \
	     "net_threshold",                                                                      \
	     CFG_DOUBLE,                                                                           \
	     "0.75",                                                                               \
	     O(threshold[RES_NET]),                                                                \
	     0,                                                                                    \
	     0.01,                                                                                 \
	     1,                                                                                    \
	     NULL,                                                                                 \
	     "hotspot threshold for network"},                                                     \
	    {"profile", "k", CFG_INT, "3",  O(k),                                                  \
	     0,         1,   1000,    NULL, "hot when k of the last n samples..."},                \
	{                                                                                          \
		"profile", "n", CFG_INT, "5", O(n), 0, 1, 1000, NULL,                              \
		    "...and the forecast exceed the threshold"                                     \
	}

/* The TLS of the HTTP API and of the calls to other daemons; the options
 * struct has `struct tls_opts tls` (common/tls.h, included by the user). */
#define CFG_TLS_KEYS                                                                               \
	{"tls",                                                                                    \
	 "mode",                                                                                   \
	 CFG_ENUM,                                                                                 \
	 "on",                                                                                     \
	 O(tls.mode),                                                                              \
	 0,                                                                                        \
	 0,                                                                                        \
	 0,                                                                                        \
	 tls_mode_names,                                                                           \
	 "`on`: the API is HTTPS only and calls to other daemons are https:// verified against "   \
	 "`tls.ca` (host name included); `off`: plain HTTP, with a warning at start"},             \
	    {"tls",                                                                                \
	     "ca",                                                                                 \
	     CFG_STR,                                                                              \
	     TLS_DEFAULT_CA,                                                                       \
	     S(tls.ca),                                                                            \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "the cluster CA's certificate (PEM; `loadease tls init`)"},                           \
	    {"tls",                                                                                \
	     "cert",                                                                               \
	     CFG_STR,                                                                              \
	     TLS_DEFAULT_CERT,                                                                     \
	     S(tls.cert),                                                                          \
	     0,                                                                                    \
	     0,                                                                                    \
	     NULL,                                                                                 \
	     "this host's certificate (PEM; `loadease tls host NAME --ip ADDR`: subjectAltName = " \
	     "its cluster IP and name)"},                                                          \
	{                                                                                          \
		"tls", "key", CFG_STR, TLS_DEFAULT_KEY, S(tls.key), 0, 0, NULL,                    \
		    "its private key (PEM); refused unless mode 0600 (or stricter) and owned by "  \
		    "the daemon's user or root"                                                    \
	}

#endif
