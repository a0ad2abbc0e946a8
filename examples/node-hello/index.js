exports.handler = async (event, context) => ({ message: 'Hello, ' + (event?.name || 'world') + '!' });
