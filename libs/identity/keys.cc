#include "libs/identity/keys.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>

#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace trainmesh::identity {
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(BIO* p) const { BIO_free(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
  void operator()(OSSL_PARAM_BLD* p) const { OSSL_PARAM_BLD_free(p); }
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

std::string BioString(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<std::string> PublicPem(EVP_PKEY* key) {
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PUBKEY(bio.get(), key) != 1) return absl::InternalError("PEM_write_bio_PUBKEY");
  return BioString(bio.get());
}

absl::StatusOr<Ptr<EVP_PKEY>> ReadPublicPem(const std::string& pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
  if (key == nullptr) return absl::InvalidArgumentError("not a PEM public key");
  return Ptr<EVP_PKEY>(key);
}

std::string BignumBytes(const BIGNUM* bn, int width = 0) {
  std::string out(width > 0 ? width : BN_num_bytes(bn), '\0');
  BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(out.size()));
  return out;
}

std::string RandomKid() {
  unsigned char bytes[12];
  RAND_bytes(bytes, sizeof(bytes));
  return Base64UrlEncode(absl::string_view(reinterpret_cast<char*>(bytes), sizeof(bytes)));
}

}  // namespace

std::string Base64UrlEncode(absl::string_view bytes) {
  std::string out;
  absl::WebSafeBase64Escape(bytes, &out);
  return out;
}

bool Base64UrlDecode(absl::string_view text, std::string* bytes) {
  return absl::WebSafeBase64Unescape(text, bytes);
}

absl::StatusOr<SigningKey> GenerateSigningKey(absl::string_view alg) {
  EVP_PKEY* raw = nullptr;
  if (alg == "RS256") {
    raw = EVP_RSA_gen(2048);
  } else if (alg == "ES256") {
    raw = EVP_EC_gen("P-256");
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unsupported signing algorithm ", alg));
  }
  if (raw == nullptr) return absl::InternalError("key generation failed");
  Ptr<EVP_PKEY> key(raw);
  SigningKey out;
  out.kid = RandomKid();
  out.alg = std::string(alg);
  Ptr<BIO> bio(BIO_new(BIO_s_mem()));
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError("PEM_write_bio_PrivateKey");
  }
  out.private_pem = BioString(bio.get());
  absl::StatusOr<std::string> pub = PublicPem(key.get());
  if (!pub.ok()) return pub.status();
  out.public_pem = *pub;
  return out;
}

absl::StatusOr<trainmesh::v1::Jwk> PublicJwk(const SigningKey& key) {
  absl::StatusOr<Ptr<EVP_PKEY>> pkey = ReadPublicPem(key.public_pem);
  if (!pkey.ok()) return pkey.status();
  trainmesh::v1::Jwk jwk;
  jwk.set_kid(key.kid);
  jwk.set_alg(key.alg);
  jwk.set_use("sig");
  if (EVP_PKEY_is_a(pkey->get(), "RSA")) {
    BIGNUM* n = nullptr;
    BIGNUM* e = nullptr;
    if (EVP_PKEY_get_bn_param(pkey->get(), OSSL_PKEY_PARAM_RSA_N, &n) != 1 ||
        EVP_PKEY_get_bn_param(pkey->get(), OSSL_PKEY_PARAM_RSA_E, &e) != 1) {
      BN_free(n);
      return absl::InternalError("cannot read RSA parameters");
    }
    Ptr<BIGNUM> n_owned(n), e_owned(e);
    jwk.set_kty("RSA");
    jwk.set_n(Base64UrlEncode(BignumBytes(n)));
    jwk.set_e(Base64UrlEncode(BignumBytes(e)));
    return jwk;
  }
  if (EVP_PKEY_is_a(pkey->get(), "EC")) {
    BIGNUM* x = nullptr;
    BIGNUM* y = nullptr;
    if (EVP_PKEY_get_bn_param(pkey->get(), OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
        EVP_PKEY_get_bn_param(pkey->get(), OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1) {
      BN_free(x);
      return absl::InternalError("cannot read EC parameters");
    }
    Ptr<BIGNUM> x_owned(x), y_owned(y);
    jwk.set_kty("EC");
    jwk.set_crv("P-256");
    jwk.set_x(Base64UrlEncode(BignumBytes(x, 32)));
    jwk.set_y(Base64UrlEncode(BignumBytes(y, 32)));
    return jwk;
  }
  return absl::InvalidArgumentError("unsupported key type");
}

absl::StatusOr<std::string> JwkToPem(const trainmesh::v1::Jwk& jwk) {
  Ptr<OSSL_PARAM_BLD> build(OSSL_PARAM_BLD_new());
  const char* type = nullptr;
  Ptr<BIGNUM> n, e;
  std::string point;
  if (jwk.kty() == "RSA") {
    std::string n_bytes, e_bytes;
    if (!Base64UrlDecode(jwk.n(), &n_bytes) || !Base64UrlDecode(jwk.e(), &e_bytes) ||
        n_bytes.size() < 256 || e_bytes.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("JWK ", jwk.kid(), ": bad RSA n/e (2048 bits or more)"));
    }
    n.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(n_bytes.data()),
                      static_cast<int>(n_bytes.size()), nullptr));
    e.reset(BN_bin2bn(reinterpret_cast<const unsigned char*>(e_bytes.data()),
                      static_cast<int>(e_bytes.size()), nullptr));
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_N, n.get());
    OSSL_PARAM_BLD_push_BN(build.get(), OSSL_PKEY_PARAM_RSA_E, e.get());
    type = "RSA";
  } else if (jwk.kty() == "EC") {
    std::string x, y;
    if (jwk.crv() != "P-256" || !Base64UrlDecode(jwk.x(), &x) || !Base64UrlDecode(jwk.y(), &y) ||
        x.size() != 32 || y.size() != 32) {
      return absl::InvalidArgumentError(absl::StrCat("JWK ", jwk.kid(), ": bad EC P-256 x/y"));
    }
    point = absl::StrCat(std::string(1, '\x04'), x, y);  // uncompressed point
    OSSL_PARAM_BLD_push_utf8_string(build.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
    OSSL_PARAM_BLD_push_octet_string(build.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                     point.size());
    type = "EC";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("JWK ", jwk.kid(), ": unsupported kty \"", jwk.kty(), "\""));
  }
  Ptr<OSSL_PARAM> params(OSSL_PARAM_BLD_to_param(build.get()));
  Ptr<EVP_PKEY_CTX> ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("JWK ", jwk.kid(), ": not a valid public key"));
  }
  Ptr<EVP_PKEY> key(raw);
  return PublicPem(key.get());
}

}  // namespace trainmesh::identity
