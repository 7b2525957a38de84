/* codecheck.c - is a function's code usable, checked without loading it (sbx_code_check). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nemo/sandbox.h"

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Is [off, off + size) inside a file of `len` bytes? */
static int inside(uint64_t off, uint64_t size, uint64_t len)
{
	return off <= len && size <= len - off;
}

/*
 * Find `handler` among the defined, exported functions of the shared object mapped at `m`
 * (`len` bytes): the .dynsym section and the string table it links to, as dlsym() would.
 */
static int check_so(const char *path, const unsigned char *m, uint64_t len, const char *handler,
		    char *err, size_t errlen)
{
	const Elf64_Ehdr *eh = (const void *)m;
	const Elf64_Shdr *sh;
	bool found_dynsym = false;

	if (len < sizeof(*eh) || memcmp(m, ELFMAG, SELFMAG))
		return fail(err, errlen, -ENOEXEC, "%s: not an ELF file", path);
	if (m[EI_CLASS] != ELFCLASS64 || m[EI_DATA] != ELFDATA2LSB)
		return fail(err, errlen, -ENOEXEC, "%s: not a 64-bit little-endian ELF file", path);
	if (eh->e_type != ET_DYN)
		return fail(err, errlen, -ENOEXEC,
			    "%s: not a shared object (build it with cc -shared -fPIC)", path);
#ifdef __x86_64__
	if (eh->e_machine != EM_X86_64)
		return fail(err, errlen, -ENOEXEC, "%s: built for ELF machine %u, not x86-64", path,
			    eh->e_machine);
#endif
	if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
	    !inside(eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr), len))
		return fail(err, errlen, -ENOEXEC, "%s: malformed ELF section headers", path);
	sh = (const void *)(m + eh->e_shoff);
	for (unsigned i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *sym = &sh[i], *str;
		const char *strtab;

		if (sym->sh_type != SHT_DYNSYM)
			continue;
		found_dynsym = true;
		if (sym->sh_link >= eh->e_shnum || sym->sh_entsize != sizeof(Elf64_Sym) ||
		    !inside(sym->sh_offset, sym->sh_size, len))
			return fail(err, errlen, -ENOEXEC, "%s: malformed .dynsym", path);
		str = &sh[sym->sh_link];
		if (!inside(str->sh_offset, str->sh_size, len) || str->sh_size == 0)
			return fail(err, errlen, -ENOEXEC, "%s: malformed .dynstr", path);
		strtab = (const char *)m + str->sh_offset;
		for (uint64_t k = 0; k < sym->sh_size / sizeof(Elf64_Sym); k++) {
			const Elf64_Sym *s =
				(const Elf64_Sym *)(const void *)(m + sym->sh_offset) + k;
			unsigned type = ELF64_ST_TYPE(s->st_info), bind = ELF64_ST_BIND(s->st_info);

			if (s->st_name >= str->sh_size ||
			    strnlen(strtab + s->st_name, str->sh_size - s->st_name) ==
				    str->sh_size - s->st_name ||
			    strcmp(strtab + s->st_name, handler))
				continue;
			if (s->st_shndx == SHN_UNDEF)
				continue; /* a reference to someone else's symbol */
			if ((type != STT_FUNC && type != STT_GNU_IFUNC) ||
			    (bind != STB_GLOBAL && bind != STB_WEAK) ||
			    ELF64_ST_VISIBILITY(s->st_other) != STV_DEFAULT)
				return fail(err, errlen, -ENOEXEC,
					    "%s: handler '%s' is not an exported function", path,
					    handler);
			return 0;
		}
	}
	if (!found_dynsym)
		return fail(err, errlen, -ENOEXEC, "%s: no dynamic symbol table", path);
	return fail(err, errlen, -ENOEXEC,
		    "handler '%s' not found in %s (it must be an exported function: nm -D "
		    "lists them)",
		    handler, path);
}

int sbx_code_check(int runtime, const char *path, const char *handler, char *err, size_t errlen)
{
	struct stat st;
	void *m;
	int fd, rc;

	if (err && errlen)
		err[0] = '\0';
	if (!path || !path[0])
		return fail(err, errlen, -EINVAL, "no code path");
	if (runtime != SBX_RUNTIME_C && runtime != SBX_RUNTIME_PYTHON &&
	    runtime != SBX_RUNTIME_EXEC)
		return fail(err, errlen, -EINVAL, "%s: unknown runtime %d", path, runtime);
	if (stat(path, &st))
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (runtime == SBX_RUNTIME_PYTHON)
		return S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)
			       ? 0
			       : fail(err, errlen, -ENOEXEC, "%s: not a file or a folder", path);
	if (!S_ISREG(st.st_mode))
		return fail(err, errlen, -ENOEXEC, "%s: not a regular file", path);
	if (runtime == SBX_RUNTIME_EXEC)
		return st.st_mode & 0111 ? 0
					 : fail(err, errlen, -ENOEXEC, "%s: not executable", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	if (st.st_size == 0) {
		close(fd);
		return fail(err, errlen, -ENOEXEC, "%s: empty file", path);
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return fail(err, errlen, -errno, "%s: mmap: %s", path, strerror(errno));
	rc = check_so(path, m, (uint64_t)st.st_size, handler && handler[0] ? handler : "handle",
		      err, errlen);
	munmap(m, (size_t)st.st_size);
	return rc;
}
