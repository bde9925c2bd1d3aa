/* cli_tls.c - `loadease tls init|host`: the cluster CA and the hosts'
 * certificates, made by openssl (called here, never through a shell), keys
 * written 0600 and never overwritten. */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/tls.h"
#include "common/util.h"

#define TLS_MAX_IPS 8
#define CA_DAYS     "3650"
#define HOST_DAYS   "825"
/* QEMU reads its TLS key itself, as the user libvirt runs it as (Debian's
 * qemu.conf default): its keys are that user's, 0600 */
#define QEMU_USER "libvirt-qemu"

static const char tls_usage[] =
    "usage: loadease tls init [DIR]\n"
    "       loadease tls host NAME --ip ADDR [--ip ADDR]... [--libvirt PKI_ROOT] [DIR]\n"
    "\n"
    "init  makes the cluster CA: DIR/ca.pem (0644) and DIR/ca-key.pem (0600).\n"
    "host  makes host NAME's certificate, signed by DIR's CA, for the agent's and\n"
    "      the controller's HTTPS (tls.cert, tls.key): DIR/NAME.pem (0644) and\n"
    "      DIR/NAME-key.pem (0600), subjectAltName DNS:NAME and IP:ADDR for each\n"
    "      --ip (the host's cluster address; add 127.0.0.1 for a local CLI), good\n"
    "      for TLS servers and clients. --libvirt PKI_ROOT (e.g. /etc/pki) also\n"
    "      writes the same CA, certificate and key where libvirtd and QEMU look for\n"
    "      them (migrations over qemu+tls:// and vm.migrate_tls): CA/cacert.pem,\n"
    "      libvirt/{server,client}cert.pem, libvirt/private/{server,client}key.pem,\n"
    "      qemu/{ca,server,client}-cert.pem, qemu/{server,client}-key.pem (owned by\n"
    "      " QEMU_USER " when that user exists: QEMU reads them itself).\n"
    "DIR defaults to " TLS_DEFAULT_DIR ". Existing files are never overwritten.\n"
    "The keys are made with openssl (EC P-256).\n";

/* Runs argv (argv[0] looked up in PATH) with its output to stderr only on
 * failure; 0 or -1 with the reason in err. */
static int run(char *const argv[], char *err, size_t errlen)
{
	char log[] = "/tmp/loadease-tls-XXXXXX";
	int fd = mkstemp(log), status = 0;
	pid_t pid;

	if (fd < 0) {
		snprintf(err, errlen, "cannot make a temporary file: %s", strerror(errno));
		return -1;
	}
	unlink(log);
	pid = fork();
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execvp(argv[0], argv);
		dprintf(2, "%s: %s (install the openssl package)\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0) {
		snprintf(err, errlen, "cannot run %s: %s", argv[0], strerror(errno));
		close(fd);
		return -1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		char out[200] = "";
		ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
		out[n > 0 ? n : 0] = '\0';
		out[strcspn(out, "\n")] = '\0';
		snprintf(err, errlen, "%s %s failed: %s", argv[0], argv[1],
		         out[0] ? out : "no output");
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int mkdirs(const char *dir, mode_t mode, char *err, size_t errlen)
{
	char p[4096];

	if (util_fmt(p, sizeof(p), "%s", dir) < 0) {
		snprintf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	for (char *s = p + 1;; s++) {
		if (*s == '/' || !*s) {
			char c = *s;
			*s = '\0';
			if (mkdir(p, mode) < 0 && errno != EEXIST) {
				snprintf(err, errlen, "mkdir %s: %s", p, strerror(errno));
				return -1;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	return 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* A fresh EC P-256 key at path, mode 0600 (made under umask 077). */
static int make_key(const char *path, char *err, size_t errlen)
{
	char *argv[] = {"openssl", "genpkey",    "-algorithm",
	                "EC",      "-pkeyopt",   "ec_paramgen_curve:P-256",
	                "-out",    (char *)path, NULL};
	mode_t old = umask(077);
	int rc = run(argv, err, errlen);

	umask(old);
	if (rc == 0 && chmod(path, 0600) < 0) {
		snprintf(err, errlen, "chmod %s: %s", path, strerror(errno));
		rc = -1;
	}
	return rc;
}

static int tls_init(const char *dir)
{
	char ca[4096], key[4096], err[512];
	char *req[] = {"openssl",
	               "req",
	               "-x509",
	               "-new",
	               "-key",
	               key,
	               "-sha256",
	               "-days",
	               CA_DAYS,
	               "-subj",
	               "/CN=LoadEase cluster CA",
	               "-addext",
	               "basicConstraints=critical,CA:TRUE",
	               "-addext",
	               "keyUsage=critical,keyCertSign,cRLSign",
	               "-out",
	               ca,
	               NULL};

	if (util_fmt(ca, sizeof(ca), "%s/ca.pem", dir) < 0 ||
	    util_fmt(key, sizeof(key), "%s/ca-key.pem", dir) < 0) {
		fprintf(stderr, "loadease tls init: %s: path too long\n", dir);
		return 2;
	}
	if (exists(ca) || exists(key)) {
		fprintf(stderr,
		        "loadease tls init: %s already exists: a cluster has one CA (remove "
		        "%s and %s to make a new one; every host then needs a new certificate)\n",
		        exists(ca) ? ca : key, ca, key);
		return 1;
	}
	if (mkdirs(dir, 0755, err, sizeof(err)) < 0 || make_key(key, err, sizeof(err)) < 0 ||
	    run(req, err, sizeof(err)) < 0 || chmod(ca, 0644) < 0) {
		fprintf(stderr, "loadease tls init: %s\n", err[0] ? err : strerror(errno));
		unlink(ca);
		unlink(key);
		return 1;
	}
	printf("cluster CA: %s (certificate, give it to every host and client: tls.ca, --ca)\n"
	       "            %s (its key, 0600: keep it on the machine that signs)\n",
	       ca, key);
	return 0;
}

/* NAME's extensions for `openssl x509 -extfile`: a temporary file. */
static int write_ext(char *path, size_t cap, const char *name, char ips[][64], int nips, char *err,
                     size_t errlen)
{
	int fd;
	FILE *f;

	snprintf(path, cap, "/tmp/loadease-ext-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		snprintf(err, errlen, "cannot make a temporary file: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fprintf(f,
	        "basicConstraints=critical,CA:FALSE\n"
	        "keyUsage=critical,digitalSignature,keyEncipherment\n"
	        "extendedKeyUsage=serverAuth,clientAuth\n"
	        "subjectAltName=DNS:%s",
	        name);
	for (int i = 0; i < nips; i++)
		fprintf(f, ",IP:%s", ips[i]);
	fprintf(f, "\n");
	if (fclose(f) != 0) {
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
		unlink(path);
		return -1;
	}
	return 0;
}

/* A random 128-bit serial as 0x..., so two certificates never share one. */
static int random_serial(char *out, size_t cap)
{
	unsigned char b[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, b, sizeof(b)) : -1;

	if (fd >= 0)
		close(fd);
	if (n != (ssize_t)sizeof(b) || cap < 35)
		return -1;
	b[0] &= 0x7f; /* positive */
	snprintf(out, cap, "0x");
	for (size_t i = 0; i < sizeof(b); i++)
		snprintf(out + 2 + 2 * i, cap - 2 - 2 * i, "%02x", b[i]);
	return 0;
}

/* Copies src to dst (mode; owned by owner when owner is not NULL and the
 * user exists), refusing to overwrite. */
static int copy_file(const char *src, const char *dst, mode_t mode, const char *owner, char *err,
                     size_t errlen)
{
	struct passwd *pw = owner ? getpwnam(owner) : NULL;
	char buf[TLS_MAX_PEM];
	size_t len = 0;
	int fd, rc = util_read_file("/", src, buf, sizeof(buf), &len);

	if (rc < 0) {
		snprintf(err, errlen, "%s: %s", src, strerror(-rc));
		return -1;
	}
	fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s%s", dst, strerror(errno),
		         errno == EEXIST ? " (not overwritten)" : "");
		return -1;
	}
	if (write(fd, buf, len) != (ssize_t)len || fchmod(fd, mode) < 0 ||
	    (pw && fchown(fd, pw->pw_uid, pw->pw_gid) < 0)) {
		snprintf(err, errlen, "writing %s: %s", dst, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The CA, certificate and key where libvirtd and QEMU's TLS look for them. */
static int write_libvirt(const char *pki, const char *ca, const char *cert, const char *key,
                         char *err, size_t errlen)
{
	static const struct {
		const char *path;
		int what; /* 0 CA, 1 certificate, 2 key */
	} files[] = {
	    {"CA/cacert.pem", 0},
	    {"libvirt/servercert.pem", 1},
	    {"libvirt/private/serverkey.pem", 2},
	    {"libvirt/clientcert.pem", 1},
	    {"libvirt/private/clientkey.pem", 2},
	    {"qemu/ca-cert.pem", 0},
	    {"qemu/server-cert.pem", 1},
	    {"qemu/server-key.pem", 2},
	    {"qemu/client-cert.pem", 1},
	    {"qemu/client-key.pem", 2},
	};
	char path[4096], dir[4096];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		const char *src = files[i].what == 0 ? ca : files[i].what == 1 ? cert : key;
		char *slash;
		if (util_fmt(path, sizeof(path), "%s/%s", pki, files[i].path) < 0) {
			snprintf(err, errlen, "%s: path too long", pki);
			return -1;
		}
		snprintf(dir, sizeof(dir), "%s", path);
		slash = strrchr(dir, '/');
		*slash = '\0';
		if (mkdirs(dir, strstr(dir, "private") ? 0700 : 0755, err, errlen) < 0 ||
		    copy_file(src, path, files[i].what == 2 ? 0600 : 0644,
		              files[i].what == 2 && !strncmp(files[i].path, "qemu/", 5) ? QEMU_USER
		                                                                        : NULL,
		              err, errlen) < 0)
			return -1;
	}
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.", *s))
			return false;
	return true;
}

static int tls_host(const char *dir, const char *name, char ips[][64], int nips, const char *pki)
{
	char ca[4096], cakey[4096], cert[4096], key[4096], csr[4096], ext[64], serial[40];
	char subj[300], err[512] = "";
	char *req[] = {"openssl", "req", "-new", "-key", key, "-subj", subj, "-out", csr, NULL};
	char *sign[] = {"openssl",  "x509", "-req",        "-in",  csr,       "-CA",   ca,
	                "-CAkey",   cakey,  "-set_serial", serial, "-sha256", "-days", HOST_DAYS,
	                "-extfile", ext,    "-out",        cert,   NULL};
	int rc = 1;

	ext[0] = '\0';
	if (util_fmt(ca, sizeof(ca), "%s/ca.pem", dir) < 0 ||
	    util_fmt(cakey, sizeof(cakey), "%s/ca-key.pem", dir) < 0 ||
	    util_fmt(cert, sizeof(cert), "%s/%s.pem", dir, name) < 0 ||
	    util_fmt(key, sizeof(key), "%s/%s-key.pem", dir, name) < 0 ||
	    util_fmt(csr, sizeof(csr), "%s/%s.csr", dir, name) < 0) {
		fprintf(stderr, "loadease tls host: %s: path too long\n", dir);
		return 2;
	}
	snprintf(subj, sizeof(subj), "/CN=%s", name);
	if (!exists(ca) || !exists(cakey)) {
		fprintf(stderr,
		        "loadease tls host: no cluster CA in %s (%s and %s): run `loadease tls "
		        "init %s` first\n",
		        dir, ca, cakey, dir);
		return 1;
	}
	if (exists(cert) || exists(key)) {
		fprintf(stderr,
		        "loadease tls host: %s already exists (remove it to make a new one)\n",
		        exists(cert) ? cert : key);
		return 1;
	}
	if (random_serial(serial, sizeof(serial)) < 0) {
		fprintf(stderr, "loadease tls host: cannot read /dev/urandom\n");
		return 1;
	}
	if (write_ext(ext, sizeof(ext), name, ips, nips, err, sizeof(err)) < 0 ||
	    make_key(key, err, sizeof(err)) < 0 || run(req, err, sizeof(err)) < 0 ||
	    run(sign, err, sizeof(err)) < 0 || chmod(cert, 0644) < 0) {
		fprintf(stderr, "loadease tls host: %s\n", err[0] ? err : strerror(errno));
		unlink(cert);
		unlink(key);
		goto out;
	}
	printf("host %s: %s (certificate: tls.cert), %s (key, 0600: tls.key)\n", name, cert, key);
	if (pki) {
		if (write_libvirt(pki, ca, cert, key, err, sizeof(err)) < 0) {
			fprintf(stderr, "loadease tls host: libvirt files under %s: %s\n", pki,
			        err);
			goto out;
		}
		printf("host %s: libvirt and QEMU TLS files under %s (CA/, libvirt/, qemu/)\n",
		       name, pki);
	}
	rc = 0;
out:
	unlink(csr);
	if (ext[0])
		unlink(ext);
	return rc;
}

int cli_tls_main(int argc, char **argv)
{
	char ips[TLS_MAX_IPS][64];
	const char *dir = NULL, *name = NULL, *pki = NULL;
	int nips = 0;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(tls_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (int i = 2; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--ip") || !strcmp(a, "--libvirt")) {
			if (i + 1 == argc) {
				fprintf(stderr, "loadease tls: %s needs a value\n%s", a, tls_usage);
				return 2;
			}
			if (!strcmp(a, "--libvirt")) {
				pki = argv[++i];
				continue;
			}
			a = argv[++i];
			{
				unsigned char bin[16];
				if (nips == TLS_MAX_IPS || strlen(a) >= 64 ||
				    (inet_pton(AF_INET, a, bin) != 1 &&
				     inet_pton(AF_INET6, a, bin) != 1)) {
					fprintf(stderr,
					        "loadease tls: --ip '%.64s' is not an IP address "
					        "(at most %d)\n",
					        a, TLS_MAX_IPS);
					return 2;
				}
			}
			snprintf(ips[nips++], sizeof(ips[0]), "%s", a);
		} else if (a[0] == '-') {
			fprintf(stderr, "loadease tls: unknown option '%.64s'\n%s", a, tls_usage);
			return 2;
		} else if (!strcmp(argv[1], "host") && !name) {
			name = a;
		} else if (!dir) {
			dir = a;
		} else {
			fprintf(stderr, "loadease tls: unexpected argument '%.64s'\n%s", a,
			        tls_usage);
			return 2;
		}
	}
	if (!dir)
		dir = TLS_DEFAULT_DIR;
	if (!strcmp(argv[1], "init")) {
		if (nips || pki) {
			fprintf(stderr,
			        "loadease tls init: --ip and --libvirt belong to `tls host`\n");
			return 2;
		}
		return tls_init(dir);
	}
	if (strcmp(argv[1], "host") != 0) {
		fprintf(stderr, "loadease tls: unknown subcommand '%.64s'\n%s", argv[1], tls_usage);
		return 2;
	}
	if (!name || !valid_name(name)) {
		fprintf(stderr,
		        "loadease tls host: give the host's name (letters, digits, - .)\n%s",
		        tls_usage);
		return 2;
	}
	if (!nips) {
		fprintf(stderr,
		        "loadease tls host: give the host's cluster address: --ip ADDR (the "
		        "address others reach its API at)\n");
		return 2;
	}
	return tls_host(dir, name, ips, nips, pki);
}
