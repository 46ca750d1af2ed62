/** The part of sodium-native (libsodium bindings, no types of its own) that checkout uses. */
declare module 'sodium-native' {
  const sodium: {
    crypto_sign_BYTES: number;
    crypto_sign_PUBLICKEYBYTES: number;
    /** Ed25519: true when `signature` is `publicKey`'s over `message`. */
    crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean;
  };
  export default sodium;
}
